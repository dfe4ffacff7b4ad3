//! `bounce-worker verp encode|decode`: the same signing as the server, for senders that
//! make return paths outside listmonk's relay and for debugging a refused address.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::verp::{KeyError, Keys, Verp, VerpError};
use crate::secrets::{MAX_SECRET_BYTES, read_bounded};

/// Why `verp encode|decode` cannot answer; `main` prints it after `bounce-worker verp: `.
#[derive(Debug, thiserror::Error)]
pub enum VerpCliError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than a Secret holds", path.display())]
    TooLarge { path: PathBuf },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "--prefix must be 1 to {} letters or digits, as spec.smtp.verpPrefix",
        bounceops_api::smtp::MAX_VERP_PREFIX
    )]
    Prefix,
    #[error("--domain must be a domain such as bounces.example.com")]
    Domain,
    #[error("{0}: not a VERP address <prefix>+<token>@<domain>")]
    NotVerp(String),
    #[error("{address}: {error} (forged, damaged, or signed with another key)")]
    Refused { address: String, error: VerpError },
}

/// A key file as the server reads its Secret: the bytes, without a trailing newline.
pub fn read_key(path: &Path) -> Result<Vec<u8>, VerpCliError> {
    let mut bytes = read_bounded(path).map_err(|source| VerpCliError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(VerpCliError::TooLarge {
            path: path.to_owned(),
        });
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

fn keys(key: &Path, previous: Option<&Path>) -> Result<Keys, VerpCliError> {
    let current = read_key(key)?;
    let previous = previous.map(read_key).transpose()?;
    Ok(Keys::new(&current, previous.as_deref())?)
}

/// The address `<prefix>+<token>@<domain>` for the subscriber and campaign.
pub fn encode(
    key: &Path,
    subscriber: Uuid,
    campaign: Option<Uuid>,
    prefix: &str,
    domain: &str,
) -> Result<String, VerpCliError> {
    if prefix.is_empty()
        || prefix.len() > bounceops_api::smtp::MAX_VERP_PREFIX
        || !prefix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(VerpCliError::Prefix);
    }
    if domain.is_empty() || domain.contains(['@', ' ']) {
        return Err(VerpCliError::Domain);
    }
    let keys = keys(key, None)?;
    Ok(keys.address(
        prefix,
        domain,
        Verp {
            subscriber,
            campaign,
        },
    ))
}

/// The subscriber and campaign of `address` (its prefix is whatever precedes `+`), or
/// why not.
pub fn decode(key: &Path, previous: Option<&Path>, address: &str) -> Result<Verp, VerpCliError> {
    let keys = keys(key, previous)?;
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    let Some((_, token)) = local.split_once('+') else {
        return Err(VerpCliError::NotVerp(address.to_owned()));
    };
    keys.open(token).map_err(|error| VerpCliError::Refused {
        address: address.to_owned(),
        error,
    })
}
