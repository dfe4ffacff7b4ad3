//! Credentials a provider that signs nothing puts in its webhook URL or headers: HTTP
//! Basic `user:password` (Postmark), or a token (`?token=` or `Authorization: Bearer`) or
//! Basic (Brevo, Mailjet, SparkPost). The whole proof is in the head.

use bounceops_api::TokenAuthProvider;

use super::hmac::ct_eq;
use super::secret::{parse_secret, required_secret};
use super::webhook::Authenticate;
use super::{Admitted, ConfigIssue, Head, Rejection};
use crate::auth::{AuthError, Credentials};
use crate::secrets::SecretsDir;

/// HTTP Basic credentials, from a Secret of `user:password` lines.
impl Authenticate for Credentials {
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        self.verify_header(head.header("authorization"))
            .map_err(basic_refusal)?;
        Ok(Admitted::Authenticated)
    }
}

fn basic_refusal(e: AuthError) -> Rejection {
    match e {
        AuthError::Missing => Rejection::Unauthorized("missing Basic credentials"),
        AuthError::Wrong => Rejection::Unauthorized("Basic credentials do not match"),
    }
}

/// A token, Basic credentials, or either.
pub struct UrlCredentials {
    basic: Option<Credentials>,
    token: Option<String>,
}

impl UrlCredentials {
    pub fn load(
        provider: &str,
        spec: &TokenAuthProvider,
        secrets: &SecretsDir,
    ) -> Result<UrlCredentials, ConfigIssue> {
        let field = |name: &str| format!("{provider}.{name}");
        // `validate` requires one of the two; with neither, `verify` would admit no one.
        let basic = (spec.credentials_secret_ref.as_ref())
            .map(|r| {
                parse_secret(secrets, &field("credentialsSecretRef"), Some(r), |text| {
                    Ok(Credentials::parse(&text)?)
                })
            })
            .transpose()?;
        let token = (spec.token_secret_ref.as_ref())
            .map(|r| required_secret(secrets, &field("tokenSecretRef"), Some(r)))
            .transpose()?;
        Ok(UrlCredentials { basic, token })
    }
}

impl Authenticate for UrlCredentials {
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        let authorization = head.header("authorization");
        if let Some(token) = &self.token {
            let given = head.query_param("token").or_else(|| {
                authorization
                    .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")))
                    .map(|t| t.trim().to_owned())
            });
            if let Some(given) = given {
                return if ct_eq(token.as_bytes(), given.as_bytes()) {
                    Ok(Admitted::Authenticated)
                } else {
                    Err(Rejection::Unauthorized("token does not match"))
                };
            }
        }
        match &self.basic {
            Some(basic) => basic.admit(head),
            None => Err(Rejection::Unauthorized("missing token")),
        }
    }
}
