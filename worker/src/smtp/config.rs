//! `spec.smtp` resolved: the VERP keys read, the timeouts parsed, the STARTTLS certificate
//! loaded. Everything that can be wrong is found before the server starts.

use std::sync::Arc;
use std::time::Duration;

use bounceops_api::{Problem, SecretRef, SmtpSpec};
use tokio_rustls::rustls::pki_types::pem::{Error as PemError, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{Error as RustlsError, ServerConfig};

use super::dialogue::Settings;
use super::verp::Keys;
use crate::secrets::{SecretError, SecretsDir};

/// The bounce MX's settings.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Lower-cased bounce domains.
    pub domains: Vec<String>,
    pub verp_prefix: String,
    pub keys: Keys,
    /// Lower-cased plain bounce addresses.
    pub addresses: Vec<String>,
    /// Lower-cased feedback-loop addresses.
    pub feedback_addresses: Vec<String>,
    /// The limits, name and certificate the relay's are alike.
    pub server: Settings,
    pub data_timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("domains", &self.domains)
            .field("verp_prefix", &self.verp_prefix)
            .field("keys", &self.keys)
            .field("max_message_bytes", &self.server.max_message_bytes)
            .field("max_sessions", &self.server.max_sessions)
            .field("tls", &self.server.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// Resolves `spec`; an error names the field to fix.
    pub fn load(spec: &SmtpSpec, secrets: &SecretsDir) -> Result<SmtpConfig, Problem> {
        let read = |field: &str, r: &SecretRef| {
            secrets
                .read_named(r)
                .map_err(|e| Problem::new(field, e.to_string()))
        };
        let current = read("spec.smtp.verpKeySecretRef", &spec.verp_key_secret_ref)?;
        let previous = match &spec.previous_verp_key_secret_ref {
            Some(r) => Some(read("spec.smtp.previousVerpKeySecretRef", r)?),
            None => None,
        };
        let keys = Keys::new(current.as_bytes(), previous.as_ref().map(String::as_bytes))
            .map_err(|e| Problem::new("spec.smtp.verpKeySecretRef", e.to_string()))?;
        let timeout = |field: &str, text: &str| {
            bounceops_api::durations::smtp_timeout(text)
                .map_err(|m| Problem::new(format!("spec.smtp.{field}"), m))
        };
        let tls = match &spec.tls_secret_name {
            None => None,
            Some(name) => Some(Arc::new(tls_config(secrets, name).map_err(|m| {
                Problem::new("spec.smtp.tlsSecretName", format!("{name}: {m}"))
            })?)),
        };
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        Ok(SmtpConfig {
            domains: lower(&spec.domains),
            verp_prefix: spec.verp_prefix.clone(),
            keys,
            addresses: lower(&spec.addresses),
            feedback_addresses: lower(&spec.feedback_addresses),
            server: Settings {
                hostname: spec
                    .domains
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "localhost".into()),
                command_timeout: timeout("commandTimeout", &spec.command_timeout)?,
                max_errors: spec.max_errors,
                max_message_bytes: usize::try_from(spec.max_message_bytes).unwrap_or(usize::MAX),
                max_recipients: spec.max_recipients as usize,
                max_sessions: spec.max_sessions as usize,
                tls,
            },
            data_timeout: timeout("dataTimeout", &spec.data_timeout)?,
        })
    }
}

/// Why a kubernetes.io/tls Secret does not make a TLS server.
#[derive(Debug, thiserror::Error)]
pub enum TlsSecretError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("tls.crt: {0}")]
    Certificates(PemError),
    #[error("tls.crt holds no certificate")]
    NoCertificate,
    #[error("tls.key: {0}")]
    Key(PemError),
    #[error("{0}")]
    Protocols(RustlsError),
    #[error("the certificate and key do not make a TLS server: {0}")]
    Mismatch(RustlsError),
}

/// The certificate chain and key of a kubernetes.io/tls Secret (`tls.crt`, `tls.key`).
pub fn tls_config(secrets: &SecretsDir, name: &str) -> Result<ServerConfig, TlsSecretError> {
    let file = |key: &str| {
        secrets.read(&SecretRef {
            name: name.to_owned(),
            key: key.to_owned(),
        })
    };
    let certs = CertificateDer::pem_slice_iter(file("tls.crt")?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsSecretError::Certificates)?;
    if certs.is_empty() {
        return Err(TlsSecretError::NoCertificate);
    }
    let key =
        PrivateKeyDer::from_pem_slice(file("tls.key")?.as_bytes()).map_err(TlsSecretError::Key)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSecretError::Protocols)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsSecretError::Mismatch)
}
