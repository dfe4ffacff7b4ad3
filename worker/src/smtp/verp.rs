//! Signed VERP return paths: `<prefix>+<token>@<bounce domain>`.
//!
//! The token is the lowercase RFC 4648 base32 (no padding) of
//! `subscriber UUID (16 bytes) ‖ campaign UUID (16 bytes, optional) ‖ MAC (5 bytes)`, where
//! MAC is HMAC-SHA256 under the VERP key of a domain-separated payload, truncated.
//!
//! Why this shape: RFC 5321 bounds a local part at 64 octets. Base32 survives MTAs that
//! lower-case local parts (it is decoded case-insensitively), and 37 bytes take 60 of its
//! characters, which leaves 4 for `<prefix>+` (so a prefix of 3 at most). What is left for
//! the MAC after two whole UUIDs is 44 bits; 40 of them fit whole bytes. A forger needs on
//! average 2^39 tries, each one a refused RCPT that the session's error limit and the
//! `forged_token` metric make loud. Dropping the six fixed bits of UUIDv4 would buy
//! 12 more, but would refuse any subscriber whose UUID is not version 4.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the truncated HMAC in a token.
pub const MAC_BYTES: usize = 5;
/// The shortest key accepted: HMAC-SHA256's own block of security.
pub const MIN_KEY_BYTES: usize = 32;
/// Separates VERP MACs from any other use of the key, and versions the token.
const CONTEXT: &[u8] = b"bounceops verp v1\0";

/// What a valid token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verp {
    pub subscriber: Uuid,
    pub campaign: Option<Uuid>,
}

/// Why an address is not a VERP address we signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerpError {
    /// Not of the shape `<prefix>+<token>@<domain>` for our prefix: not ours at all.
    #[error("not a VERP address of this prefix")]
    NotVerp,
    /// Our shape, but the token does not decode or its MAC does not verify: forged or
    /// damaged.
    #[error("the VERP token's signature does not verify")]
    BadSignature,
}

/// Why a VERP key is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `which` is "the key" or "the previous key".
    #[error(
        "{which} is {bytes} bytes; a VERP key must have at least {MIN_KEY_BYTES} \
         (make one with `openssl rand -base64 48`)"
    )]
    TooShort { which: &'static str, bytes: usize },
}

/// The VERP signing keys: the current one, and the previous one while a rotation lasts.
#[derive(Clone)]
pub struct Keys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Refuses a key shorter than [`MIN_KEY_BYTES`] (each key is the secret's bytes as
    /// they are, e.g. `openssl rand -base64 48` output).
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Result<Keys, KeyError> {
        for (which, key) in [("the key", Some(current)), ("the previous key", previous)] {
            if let Some(k) = key
                && k.len() < MIN_KEY_BYTES
            {
                return Err(KeyError::TooShort {
                    which,
                    bytes: k.len(),
                });
            }
        }
        Ok(Keys {
            current: current.to_vec(),
            previous: previous.map(<[u8]>::to_vec),
        })
    }

    /// The token for `verp`, signed with the current key.
    pub fn token(&self, verp: Verp) -> String {
        let mut bytes = payload_ids(verp);
        bytes.extend_from_slice(&mac(&self.current, verp).finalize().into_bytes()[..MAC_BYTES]);
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    }

    /// `<prefix>+<token>@<domain>`.
    pub fn address(&self, prefix: &str, domain: &str, verp: Verp) -> String {
        format!(
            "{prefix}+{}@{}",
            self.token(verp),
            domain.to_ascii_lowercase()
        )
    }

    /// What `token` carries, when the current or the previous key signed it. The MAC is
    /// compared in constant time (`Mac::verify_truncated_left`).
    pub fn open(&self, token: &str) -> Result<Verp, VerpError> {
        let bytes = BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .map_err(|_| VerpError::BadSignature)?;
        let (ids, tag) = match bytes.len() {
            n if n == 16 + MAC_BYTES || n == 32 + MAC_BYTES => bytes.split_at(n - MAC_BYTES),
            _ => return Err(VerpError::BadSignature),
        };
        let subscriber = Uuid::from_slice(&ids[..16]).map_err(|_| VerpError::BadSignature)?;
        let campaign = match ids.len() {
            32 => Some(Uuid::from_slice(&ids[16..]).map_err(|_| VerpError::BadSignature)?),
            _ => None,
        };
        let verp = Verp {
            subscriber,
            campaign,
        };
        let verified = |key: &[u8]| mac(key, verp).verify_truncated_left(tag).is_ok();
        if verified(&self.current) || self.previous.as_deref().is_some_and(verified) {
            Ok(verp)
        } else {
            Err(VerpError::BadSignature)
        }
    }

    /// The token of `address` opened, when its local part is `<prefix>+<token>` (prefix
    /// matched without regard to case). The domain is the caller's business.
    pub fn open_address(&self, prefix: &str, address: &str) -> Result<Verp, VerpError> {
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        let (p, token) = local.split_once('+').ok_or(VerpError::NotVerp)?;
        if !p.eq_ignore_ascii_case(prefix) {
            return Err(VerpError::NotVerp);
        }
        self.open(token)
    }
}

fn payload_ids(verp: Verp) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(32 + MAC_BYTES);
    bytes.extend_from_slice(verp.subscriber.as_bytes());
    if let Some(c) = verp.campaign {
        bytes.extend_from_slice(c.as_bytes());
    }
    bytes
}

/// HMAC over the context, then a byte saying whether a campaign follows, then the ids.
fn mac(key: &[u8], verp: Verp) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(CONTEXT);
    m.update(&[u8::from(verp.campaign.is_some())]);
    m.update(&payload_ids(verp));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OLD: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn verp(campaign: bool) -> Verp {
        Verp {
            subscriber: Uuid::parse_str("6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11").unwrap(),
            campaign: campaign
                .then(|| Uuid::parse_str("0f7f4c39-2d0c-4d5e-8a43-2c0b1f2e3d4c").unwrap()),
        }
    }

    #[test]
    fn round_trips_with_and_without_campaign() {
        let keys = Keys::new(KEY, None).unwrap();
        for v in [verp(true), verp(false)] {
            let token = keys.token(v);
            assert_eq!(keys.open(&token), Ok(v));
            assert_eq!(
                keys.open(&token.to_ascii_uppercase()),
                Ok(v),
                "case-insensitive"
            );
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
    }

    #[test]
    fn longest_local_part_fits_rfc_5321() {
        let keys = Keys::new(KEY, None).unwrap();
        assert_eq!(keys.token(verp(true)).len(), 60);
        assert_eq!(keys.token(verp(false)).len(), 34);
        let address = keys.address("abc", "Bounces.Example.com", verp(true));
        let local = address.split('@').next().unwrap();
        assert_eq!(local.len(), 64);
        assert!(address.ends_with("@bounces.example.com"));
        assert_eq!(keys.open_address("ABC", &address), Ok(verp(true)));
    }

    #[test]
    fn every_flipped_character_is_refused() {
        let keys = Keys::new(KEY, None).unwrap();
        let token = keys.token(verp(true));
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'a' { b'b' } else { b'a' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(keys.open(&t), Err(VerpError::BadSignature), "position {i}");
        }
        assert_eq!(keys.open(""), Err(VerpError::BadSignature));
        assert_eq!(keys.open("!!!"), Err(VerpError::BadSignature));
        assert_eq!(keys.open(&token[..59]), Err(VerpError::BadSignature));
    }

    #[test]
    fn a_campaign_cannot_be_cut_off() {
        // Dropping the campaign and keeping the MAC must not verify: the payload says
        // whether a campaign follows.
        let keys = Keys::new(KEY, None).unwrap();
        let mut bytes = BASE32_NOPAD
            .decode(keys.token(verp(true)).to_ascii_uppercase().as_bytes())
            .unwrap();
        bytes.drain(16..32);
        let cut = BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
        assert_eq!(keys.open(&cut), Err(VerpError::BadSignature));
    }

    #[test]
    fn rotation_accepts_the_previous_key_only_while_configured() {
        let old = Keys::new(OLD, None).unwrap();
        let token = old.token(verp(true));
        let rotating = Keys::new(KEY, Some(OLD)).unwrap();
        assert_eq!(rotating.open(&token), Ok(verp(true)));
        let rotated = Keys::new(KEY, None).unwrap();
        assert_eq!(rotated.open(&token), Err(VerpError::BadSignature));
    }

    #[test]
    fn short_keys_and_foreign_addresses_are_refused() {
        let e = Keys::new(b"short", None).unwrap_err();
        assert!(e.to_string().contains("at least 32"), "{e}");
        assert!(Keys::new(KEY, Some(b"short")).is_err());
        let keys = Keys::new(KEY, None).unwrap();
        assert_eq!(
            keys.open_address("b", "postmaster@bounces.example.com"),
            Err(VerpError::NotVerp)
        );
        assert_eq!(
            keys.open_address("b", "x+abc@bounces.example.com"),
            Err(VerpError::NotVerp)
        );
        assert_eq!(
            keys.open_address("b", "b+abc@bounces.example.com"),
            Err(VerpError::BadSignature)
        );
    }
}
