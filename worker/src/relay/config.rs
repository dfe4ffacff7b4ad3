//! `spec.relay` resolved: the VERP signing key read (the bounce MX's), the upstream's login
//! and authorities, the senders' logins and the STARTTLS certificate. Everything that can be
//! wrong is found before the relay starts.

use std::sync::Arc;
use std::time::Duration;

use bounceops_api::{Problem, RelaySpec, SecretRef, SmtpSpec, TlsMode};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::{Error as PemError, PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::auth::Credentials;
use crate::secrets::SecretsDir;
use crate::smtp::dialogue::Settings;
use crate::smtp::verp::Keys;

/// The upstream server and how to reach it.
#[derive(Clone)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Verifies the upstream's certificate: the system's roots, or `caSecretRef`'s.
    pub tls_client: Arc<ClientConfig>,
    /// Username and password.
    pub login: Option<(String, String)>,
    pub pool_size: usize,
    pub timeout: Duration,
}

/// The relay's settings.
#[derive(Clone)]
pub struct RelayConfig {
    /// Signs the return paths: the bounce MX's current VERP key.
    pub keys: Keys,
    pub verp_prefix: String,
    pub return_path_domain: String,
    pub upstream: Upstream,
    /// Senders' logins; none: no AUTH (the sidecar).
    pub credentials: Option<Credentials>,
    pub record_temporary_failures: bool,
    /// The limits, name and certificate the bounce MX's are alike.
    pub server: Settings,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("return_path_domain", &self.return_path_domain)
            .field("upstream", &(&self.upstream.host, self.upstream.port))
            .field("login", &self.upstream.login.is_some())
            .field("credentials", &self.credentials)
            .field("tls", &self.server.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// How many refused commands end a session, as the bounce MX's default.
const MAX_ERRORS: u32 = 10;

impl RelayConfig {
    /// Resolves `relay` (with the bounce MX's `smtp`, whose key signs); an error names the
    /// field to fix.
    pub fn load(
        relay: &RelaySpec,
        smtp: &SmtpSpec,
        secrets: &SecretsDir,
    ) -> Result<RelayConfig, Problem> {
        let read = |field: &str, r: &SecretRef| {
            secrets
                .read_named(r)
                .map_err(|e| Problem::new(field, e.to_string()))
        };
        let key = read("spec.smtp.verpKeySecretRef", &smtp.verp_key_secret_ref)?;
        let keys = Keys::new(key.as_bytes(), None)
            .map_err(|e| Problem::new("spec.smtp.verpKeySecretRef", e.to_string()))?;
        let timeout = |field: &str, text: &str| {
            bounceops_api::durations::smtp_timeout(text)
                .map_err(|m| Problem::new(format!("spec.relay.{field}"), m))
        };
        let up = &relay.upstream;
        let login = match (&up.username_secret_ref, &up.password_secret_ref) {
            (Some(u), Some(p)) => Some((
                read("spec.relay.upstream.usernameSecretRef", u)?,
                read("spec.relay.upstream.passwordSecretRef", p)?,
            )),
            _ => None,
        };
        let roots = match &up.ca_secret_ref {
            Some(r) => {
                let pem = read("spec.relay.upstream.caSecretRef", r)?;
                pem_roots(&pem)
                    .map_err(|e| Problem::new("spec.relay.upstream.caSecretRef", e.to_string()))?
            }
            None => system_roots(),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls_client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Problem::new("spec.relay.upstream.tls", e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let credentials =
            match &relay.credentials_secret_ref {
                Some(r) => {
                    let text = read("spec.relay.credentialsSecretRef", r)?;
                    Some(Credentials::parse(&text).map_err(|e| {
                        Problem::new("spec.relay.credentialsSecretRef", e.to_string())
                    })?)
                }
                None => None,
            };
        let tls = match &relay.tls_secret_name {
            None => None,
            Some(name) => Some(Arc::new(
                crate::smtp::config::tls_config(secrets, name).map_err(|m| {
                    Problem::new("spec.relay.tlsSecretName", format!("{name}: {m}"))
                })?,
            )),
        };
        Ok(RelayConfig {
            keys,
            verp_prefix: smtp.verp_prefix.clone(),
            return_path_domain: relay.return_path_domain.to_ascii_lowercase(),
            upstream: Upstream {
                host: up.host.clone(),
                port: up.port,
                tls: up.tls,
                tls_client: Arc::new(tls_client),
                login,
                pool_size: up.pool_size.max(1) as usize,
                timeout: timeout("upstream.timeout", &up.timeout)?,
            },
            credentials,
            record_temporary_failures: relay.record_temporary_failures,
            server: Settings {
                hostname: relay.return_path_domain.clone(),
                command_timeout: timeout("commandTimeout", &relay.command_timeout)?,
                max_errors: MAX_ERRORS,
                max_message_bytes: usize::try_from(relay.max_message_bytes).unwrap_or(usize::MAX),
                max_recipients: relay.max_recipients as usize,
                max_sessions: relay.max_sessions as usize,
                tls,
            },
        })
    }
}

/// Why `caSecretRef` holds no usable authority.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("not PEM certificates: {0}")]
    NotPem(PemError),
    #[error("holds no PEM certificate")]
    Empty,
    #[error("a certificate is not usable as an authority: {0}")]
    NotAuthority(tokio_rustls::rustls::Error),
}

fn pem_roots(pem: &str) -> Result<RootCertStore, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(CaError::NotPem)?;
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(CaError::NotAuthority)?;
    }
    Ok(roots)
}

/// The system's authorities; one that does not parse is skipped, as every TLS client does.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's certificate authorities");
    }
    let (_, skipped) = roots.add_parsable_certificates(found.certs);
    if skipped > 0 {
        tracing::debug!(skipped, "system authorities that do not parse");
    }
    roots
}
