//! TLS for mailbox sessions (rustls with the ring provider): the system's trust roots by
//! default, or no verification at all when the mailbox says `tlsSkipVerify: true`.

use std::sync::{Arc, LazyLock};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use super::ScanError;

fn provider() -> Arc<CryptoProvider> {
    // Named explicitly: if another crate in the build enables a second provider, the
    // process-wide default becomes ambiguous and `ClientConfig::builder()` would panic.
    Arc::new(ring::default_provider())
}

/// Read once per process: loading the system roots parses every certificate in the store.
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured (rustls-native-certs), as with OpenSSL.
static VERIFYING: LazyLock<Result<Arc<ClientConfig>, String>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this system ({} errors); install \
             ca-certificates, set SSL_CERT_FILE, or set tlsSkipVerify",
            found.errors.len()
        ));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
});

static SKIPPING: LazyLock<Result<Arc<ClientConfig>, String>> = LazyLock::new(|| {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
        .with_no_client_auth();
    Ok(Arc::new(config))
});

/// Runs the TLS handshake over an open connection (implicit TLS or after STARTTLS/STLS).
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    skip_verify: bool,
) -> Result<TlsStream<TcpStream>, ScanError> {
    let config = if skip_verify { &*SKIPPING } else { &*VERIFYING };
    let config = config.clone().map_err(ScanError::Connect)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| ScanError::Connect(format!("{host:?} is not a valid TLS server name: {e}")))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ScanError::Connect(format!("TLS handshake with {host} failed: {e}")))
}

/// `tlsSkipVerify`: the user chose encryption without authentication of the server (a
/// self-signed certificate on an internal host). Signatures are still checked so the
/// handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
