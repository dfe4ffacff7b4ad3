//! The senders' logins: SASL PLAIN (RFC 4616) and LOGIN, the two that listmonk and most
//! mail libraries offer. By hand: smtp-proto parses the AUTH command but has no server side
//! of the exchanges, and both are a base64 string or two.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A base64 response (`=` is the empty one, RFC 4954 §4).
pub fn decode(text: &str) -> Option<String> {
    let text = text.trim();
    if text == "=" {
        return Some(String::new());
    }
    String::from_utf8(STANDARD.decode(text).ok()?).ok()
}

pub fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

/// `authzid NUL authcid NUL passwd`: the user and password, when the authorization identity
/// is absent or the same user (the relay acts for no one else).
pub fn plain(response: &str) -> Option<(String, String)> {
    let text = decode(response)?;
    let mut parts = text.split('\0');
    let (authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || !(authz.is_empty() || authz == user) {
        return None;
    }
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        assert_eq!(
            plain(&encode("\0listmonk\0s3cret")),
            Some(("listmonk".into(), "s3cret".into()))
        );
        assert_eq!(
            plain(&encode("listmonk\0listmonk\0s3cret")),
            Some(("listmonk".into(), "s3cret".into()))
        );
        assert_eq!(
            plain(&encode("admin\0listmonk\0s3cret")),
            None,
            "acting for another"
        );
        assert_eq!(plain(&encode("listmonk:s3cret")), None);
        assert_eq!(plain("not base64!"), None);
        assert_eq!(decode("="), Some(String::new()));
    }
}
