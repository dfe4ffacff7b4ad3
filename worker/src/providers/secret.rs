//! The secrets of enabled providers, read at start-up: an enabled provider without its
//! secret, or with one it cannot use, stops the worker with the field to fix.

use bounceops_api::SecretRef;

use super::{ConfigIssue, Loaded};
use crate::auth::CredentialsError;
use crate::secrets::SecretsDir;

/// Why a provider cannot use the secret it read: reported at the secret's field.
#[derive(Debug, thiserror::Error)]
pub enum SecretValueError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("the secret is not whsec_ followed by base64")]
    NotWhsec,
    #[error("the public key is not base64")]
    PublicKeyNotBase64,
    #[error("the public key is not a P-256 SubjectPublicKeyInfo")]
    PublicKeyNotP256,
}

/// Reads the secret an enabled provider requires; `field` is the path under
/// `spec.providers.`, e.g. `sendgrid.publicKeySecretRef`. `validate` refuses an enabled
/// provider without its reference (the rule is `bounceops_api::providers::REQUIRED_SECRETS`),
/// so `None` only comes from a caller that skipped it: an error in the same words rather
/// than a panic.
pub fn required_secret(
    secrets: &SecretsDir,
    field: &str,
    r: Option<&SecretRef>,
) -> Result<String, ConfigIssue> {
    let field = format!("spec.providers.{field}");
    let r = r.ok_or_else(|| ConfigIssue::new(&field, bounceops_api::providers::SECRET_REQUIRED))?;
    secrets
        .read_named(r)
        .map_err(|e| ConfigIssue::new(field, e.to_string()))
}

/// [`required_secret`], made into what the provider keeps (a key, credentials) by `make`,
/// whose refusal is reported at the same field.
pub fn parse_secret<T>(
    secrets: &SecretsDir,
    field: &str,
    r: Option<&SecretRef>,
    make: impl FnOnce(String) -> Result<T, SecretValueError>,
) -> Result<T, ConfigIssue> {
    let text = required_secret(secrets, field, r)?;
    make(text).map_err(|e| ConfigIssue::new(format!("spec.providers.{field}"), e.to_string()))
}

/// The load of a provider made from one secret: `None` when it is not `enabled`, else the
/// provider `make` builds from the secret at `field` ([`parse_secret`]).
pub fn from_secret<P>(
    enabled: bool,
    secrets: &SecretsDir,
    field: &str,
    r: Option<&SecretRef>,
    make: impl FnOnce(String) -> Result<P, SecretValueError>,
) -> Loaded<P> {
    if !enabled {
        return Ok(None);
    }
    parse_secret(secrets, field, r, make).map(Some)
}
