//! DKIM as a sender's side does it and as a receiver checks it (RFC 6376), with Stalwart's
//! mail-auth: a key pair made for the test, a message signed with it, and the verification
//! of what came out of the relay. The public key that a receiver would look up in DNS
//! (`<selector>._domainkey.<domain>`) is handed to the verifier through its cache, so no
//! lookup leaves the machine.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::EncodePrivateKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub const DOMAIN: &str = "sender.test";
pub const SELECTOR: &str = "news";

/// A signing key and the TXT record that publishes its public half.
pub struct Key {
    private: rsa::RsaPrivateKey,
    record: String,
}

impl Key {
    pub fn new() -> Key {
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let public = private.to_public_key().to_pkcs1_der().unwrap();
        let record = format!(
            "v=DKIM1; k=rsa; p={}",
            base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
        );
        Key { private, record }
    }

    fn signing(&self) -> RsaKey<Sha256> {
        let der = self.private.to_pkcs8_der().unwrap();
        let der = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        RsaKey::from_key_der(PrivateKeyDer::Pkcs8(der)).unwrap()
    }

    /// `message` (headers and body, CRLF lines, not dot-stuffed) with a `DKIM-Signature`
    /// in front. `simple/simple`: the strictest canonicalization, which any change of a
    /// signed header's bytes (even its folding or white space) or of the body breaks.
    pub fn sign(&self, message: &[u8], headers: &[&str]) -> Vec<u8> {
        let signature = DkimSigner::from_key(self.signing())
            .domain(DOMAIN)
            .selector(SELECTOR)
            .headers(headers.iter().copied())
            .header_canonicalization(Canonicalization::Simple)
            .body_canonicalization(Canonicalization::Simple)
            .sign(message)
            .unwrap();
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(message);
        signed
    }

    /// What a receiver concludes of `message`'s signatures: `Pass` for each when it is
    /// unchanged since signing.
    pub async fn verify(&self, message: &[u8]) -> Vec<DkimResult> {
        let keys = Keys::default();
        keys.insert(
            format!("{SELECTOR}._domainkey.{DOMAIN}.").into_boxed_str(),
            Txt::from(DomainKey::parse(self.record.as_bytes())),
            Instant::now() + Duration::from_secs(3600),
        );
        let message = AuthenticatedMessage::parse(message).expect("a message");
        // The endpoint is never asked: the one record the verifier needs is in the cache.
        let verifier = MessageAuthenticator::new_doh("https://127.0.0.1:9/dns-query");
        verifier
            .verify_dkim(Parameters::new(&message).with_txt_cache(&keys))
            .await
            .iter()
            .map(|output| output.result().clone())
            .collect()
    }
}

/// The wire form of DATA (RFC 5321 §4.5.2): a line that starts with a dot gets another, and
/// the end marker follows.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// The message back from its wire form (what a receiving MTA stores).
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = wire.strip_suffix(b".\r\n").expect("the end marker");
    let mut message = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    message
}

/// The TXT records the verifier may use instead of asking DNS (mail-auth's cache).
#[derive(Default)]
struct Keys(Mutex<HashMap<Box<str>, (Txt, Instant)>>);

impl ResolverCache<Box<str>, Txt> for Keys {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.0.lock().unwrap();
        let (value, until) = map.get(name)?;
        (*until > Instant::now()).then(|| value.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: Box<str>, value: Txt, until: Instant) {
        self.0.lock().unwrap().insert(key, (value, until));
    }
}
