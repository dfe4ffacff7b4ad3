//! SNS's signing certificates: which URLs may be fetched (`CertUrlPolicy`), the fetch, and
//! a cache of the keys read, and of the failures for [`FAILED_FETCH_KEPT`], so that
//! messages naming a certificate that cannot be had do not each cost a fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use regex::Regex;
use reqwest::Url;
use x509_cert::der::DecodePem;
use x509_cert::der::oid::db::rfc5912::RSA_ENCRYPTION;

use super::sns::RsaKey;
use crate::providers::{Context, Rejection};

/// AWS's SNS endpoints, https only. The path is the one SNS uses for its signing
/// certificates; the whole URL must match.
pub const DEFAULT_CERT_URL_PATTERN: &str =
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[A-Za-z0-9]+\.pem$";

/// Certificates are few (one per region and rotation); the bound only guards memory.
const MAX_CACHED_CERTS: usize = 64;
const MAX_CERT_BYTES: usize = 64 * 1024;
/// How long a certificate that could not be fetched (or used) is not fetched again: long
/// enough that a flood of messages naming it costs one fetch a minute, short enough that
/// SNS's retries (20 s apart by default) find it once the network is back.
pub const FAILED_FETCH_KEPT: Duration = Duration::from_secs(60);

/// The keys of the certificates fetched, and the fetches that failed, by URL.
pub struct Certificates {
    policy: CertUrlPolicy,
    keys: RwLock<HashMap<String, Arc<RsaKey>>>,
    failed: Mutex<HashMap<String, (Instant, CertFailure)>>,
}

/// Why a certificate could not be had, remembered for [`FAILED_FETCH_KEPT`].
#[derive(Debug, Clone, Copy)]
enum CertFailure {
    /// Not fetched (network, status, size): likely passing, so SNS should retry (503).
    Unreachable,
    /// Fetched, and not an RSA certificate (401).
    Unusable,
}

impl CertFailure {
    fn rejection(self) -> Rejection {
        match self {
            CertFailure::Unreachable => {
                Rejection::Retry("signing certificate could not be fetched, retry later")
            }
            CertFailure::Unusable => {
                Rejection::Unauthorized("signing certificate is not a usable RSA certificate")
            }
        }
    }
}

impl Certificates {
    pub fn new(policy: CertUrlPolicy) -> Certificates {
        Certificates {
            policy,
            keys: RwLock::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// The key of the certificate at `raw`, checked against the URL policy and fetched on
    /// first use. The cache is keyed by the exact text, so a hit is a URL that passed the
    /// policy before and is not checked again. A failure is kept for [`FAILED_FETCH_KEPT`]
    /// and answered again without a fetch.
    pub async fn public_key(&self, raw: &str, ctx: &Context) -> Result<Arc<RsaKey>, Rejection> {
        if let Some(key) = self.keys.read().expect("not poisoned").get(raw) {
            return Ok(key.clone());
        }
        let url = &self.policy.check(raw).map_err(Rejection::Unauthorized)?;
        {
            let mut failed = self.failed.lock().expect("not poisoned");
            match failed.get(raw) {
                Some((at, why)) if at.elapsed() < FAILED_FETCH_KEPT => return Err(why.rejection()),
                Some(_) => {
                    failed.remove(raw);
                }
                None => {}
            }
        }
        match Certificates::fetch(url, ctx).await {
            Ok(key) => {
                let key = Arc::new(key);
                let mut keys = self.keys.write().expect("not poisoned");
                if keys.len() >= MAX_CACHED_CERTS {
                    keys.clear();
                }
                keys.insert(raw.to_owned(), key.clone());
                Ok(key)
            }
            Err(why) => {
                let mut failed = self.failed.lock().expect("not poisoned");
                if failed.len() >= MAX_CACHED_CERTS {
                    failed.clear();
                }
                failed.insert(raw.to_owned(), (Instant::now(), why));
                Err(why.rejection())
            }
        }
    }

    /// Fetches and reads the certificate at `url`, which passed the URL policy.
    async fn fetch(url: &Url, ctx: &Context) -> Result<RsaKey, CertFailure> {
        // A certificate on an allowed host that cannot be read now is most likely a network
        // problem: 503 makes SNS retry instead of dropping the notification.
        let fetch_failed = |what: &str| {
            crate::warn_throttled!(url = %url, "{what}");
            CertFailure::Unreachable
        };
        let mut response = ctx
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fetch_failed(&format!("certificate fetch failed: {e}")))?;
        if !response.status().is_success() {
            return Err(fetch_failed(&format!(
                "certificate fetch answered {}",
                response.status()
            )));
        }
        // Read in chunks so that a host that streams without end cannot fill memory.
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_failed(&format!("certificate read failed: {e}")))?
        {
            if pem.len() + chunk.len() > MAX_CERT_BYTES {
                return Err(fetch_failed("certificate too large"));
            }
            pem.extend_from_slice(&chunk);
        }
        public_key_of_pem(&pem).map_err(|e| {
            crate::warn_throttled!(url = %url, error = %e, "unusable signing certificate");
            CertFailure::Unusable
        })
    }
}

/// Why a signing certificate gives no key: logged, the request answered as unverifiable.
#[derive(Debug, thiserror::Error)]
pub enum CertKeyError {
    #[error("{0}")]
    NotCertificate(x509_cert::der::Error),
    #[error("the key is not RSA but {0}")]
    NotRsa(x509_cert::spki::ObjectIdentifier),
    #[error("the public key is not a whole number of bytes")]
    PartialByte,
}

/// The certificate's RSA public key.
pub fn public_key_of_pem(pem: &[u8]) -> Result<RsaKey, CertKeyError> {
    let cert = x509_cert::Certificate::from_pem(pem).map_err(CertKeyError::NotCertificate)?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(CertKeyError::NotRsa(spki.algorithm.oid));
    }
    let pkcs1 = spki
        .subject_public_key
        .as_bytes()
        .ok_or(CertKeyError::PartialByte)?;
    Ok(RsaKey::new(pkcs1.to_vec()))
}

/// Which signing-certificate URLs may be fetched.
pub struct CertUrlPolicy(Regex);

impl CertUrlPolicy {
    pub fn new(pattern: &str) -> Result<CertUrlPolicy, regex::Error> {
        bounceops_api::providers::cert_url_regex(pattern).map(CertUrlPolicy)
    }

    pub fn check(&self, raw: &str) -> Result<Url, &'static str> {
        let url = Url::parse(raw).map_err(|_| "SigningCertURL is not a URL")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("SigningCertURL must not carry user info");
        }
        if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#', '@']) {
            return Err("SigningCertURL must not carry a query or fragment");
        }
        // The raw text is matched, not the parsed URL: the parser normalises (case, dots,
        // percent-encoding) and a check must see what was signed.
        if !self.0.is_match(raw) {
            return Err("SigningCertURL does not match certUrlPattern");
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> CertUrlPolicy {
        CertUrlPolicy::new(DEFAULT_CERT_URL_PATTERN).unwrap()
    }

    #[test]
    fn default_pattern_accepts_aws_hosts() {
        let p = default_policy();
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn default_pattern_rejects_look_alikes() {
        let p = default_policy();
        for bad in [
            "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-abc.pem",
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com@evil.test/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#frag",
            "https://evil.test/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/other.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.evilamazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem/../x",
            "ftp://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_pattern_is_anchored() {
        let p = CertUrlPolicy::new(r"http://127\.0\.0\.1:\d+/cert\.pem").unwrap();
        assert!(p.check("http://127.0.0.1:8080/cert.pem").is_ok());
        assert!(p.check("http://127.0.0.1:8080/cert.pem.evil").is_err());
        assert!(
            p.check("http://x.test/http://127.0.0.1:1/cert.pem")
                .is_err()
        );
    }
}
