//! `bounce-worker verp encode|decode`: the same signing as the server, for senders that
//! make return paths outside listmonk's relay and for debugging a refused address.

use std::path::Path;

use uuid::Uuid;

use super::verp::{Keys, Verp};
use crate::secrets::MAX_SECRET_BYTES;

/// A key file as the server reads its Secret: the bytes, without a trailing newline.
pub fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!("{}: larger than a Secret holds", path.display()));
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

fn keys(key: &Path, previous: Option<&Path>) -> Result<Keys, String> {
    let current = read_key(key)?;
    let previous = previous.map(read_key).transpose()?;
    Keys::new(&current, previous.as_deref())
}

/// The address `<prefix>+<token>@<domain>` for the subscriber and campaign.
pub fn encode(
    key: &Path,
    subscriber: Uuid,
    campaign: Option<Uuid>,
    prefix: &str,
    domain: &str,
) -> Result<String, String> {
    if prefix.is_empty()
        || prefix.len() > bounceops_api::smtp::MAX_VERP_PREFIX
        || !prefix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(format!(
            "--prefix must be 1 to {} letters or digits, as spec.smtp.verpPrefix",
            bounceops_api::smtp::MAX_VERP_PREFIX
        ));
    }
    if domain.is_empty() || domain.contains(['@', ' ']) {
        return Err("--domain must be a domain such as bounces.example.com".into());
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
pub fn decode(key: &Path, previous: Option<&Path>, address: &str) -> Result<Verp, String> {
    let keys = keys(key, previous)?;
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    let Some((_, token)) = local.split_once('+') else {
        return Err(format!(
            "{address}: not a VERP address <prefix>+<token>@<domain>"
        ));
    };
    keys.open(token)
        .map_err(|e| format!("{address}: {e} (forged, damaged, or signed with another key)"))
}
