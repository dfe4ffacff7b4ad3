//! Credentials of the generic webhook and the bounce API, as listmonk accepts them:
//! `Authorization: token user:token` or HTTP Basic with the same user and token.

use base64::Engine;
use subtle::ConstantTimeEq;

/// The `user:token` pairs read from the credentials secret, one per line.
#[derive(Clone)]
pub struct Credentials(Vec<String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} entries)", self.0.len())
    }
}

/// Why a request was refused; the two cases get different status codes.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No usable Authorization header: 401.
    Missing,
    /// Well-formed credentials that match no entry: 403.
    Wrong,
}

/// Why a credentials secret is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("line {0} is not user:token")]
    NotUserToken(usize),
    #[error("no user:token line")]
    NoEntry,
}

impl Credentials {
    /// No entry: every request is refused (a process that serves no API).
    pub fn none() -> Credentials {
        Credentials(Vec::new())
    }

    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, token)) if !user.is_empty() && !token.is_empty() => {
                    entries.push(line.to_owned())
                }
                _ => return Err(CredentialsError::NotUserToken(i + 1)),
            }
        }
        if entries.is_empty() {
            return Err(CredentialsError::NoEntry);
        }
        Ok(Credentials(entries))
    }

    pub fn check(&self, user: &str, token: &str) -> bool {
        let candidate = format!("{user}:{token}");
        // Compare against every entry, without stopping early, in constant time per entry,
        // so the response time says nothing about which entry or prefix came close.
        let mut ok = subtle::Choice::from(0);
        for entry in &self.0 {
            ok |= entry.as_bytes().ct_eq(candidate.as_bytes());
        }
        ok.into()
    }

    /// Checks an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<(), AuthError> {
        let (user, token) = parse_header(header.ok_or(AuthError::Missing)?)?;
        if self.check(&user, &token) {
            Ok(())
        } else {
            Err(AuthError::Wrong)
        }
    }
}

fn parse_header(value: &str) -> Result<(String, String), AuthError> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    let pair = if scheme.eq_ignore_ascii_case("token") {
        rest.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthError::Missing)?;
        String::from_utf8(bytes).map_err(|_| AuthError::Missing)?
    } else {
        return Err(AuthError::Missing);
    };
    let (user, token) = pair.split_once(':').ok_or(AuthError::Missing)?;
    Ok((user.to_owned(), token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::parse("# api users\nalice:s3cret\n\nbob:t0ken:with:colons\n").unwrap()
    }

    #[test]
    fn token_scheme() {
        let c = creds();
        assert_eq!(c.verify_header(Some("token alice:s3cret")), Ok(()));
        assert_eq!(c.verify_header(Some("Token bob:t0ken:with:colons")), Ok(()));
        assert_eq!(
            c.verify_header(Some("token alice:wrong")),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            c.verify_header(Some("token alice:s3cre")),
            Err(AuthError::Wrong)
        );
    }

    #[test]
    fn basic_scheme() {
        let c = creds();
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        assert_eq!(c.verify_header(Some(&format!("Basic {b64}"))), Ok(()));
        let bad = base64::engine::general_purpose::STANDARD.encode("alice:nope");
        assert_eq!(
            c.verify_header(Some(&format!("Basic {bad}"))),
            Err(AuthError::Wrong)
        );
        assert_eq!(c.verify_header(Some("Basic !!!")), Err(AuthError::Missing));
    }

    #[test]
    fn missing_or_malformed() {
        let c = creds();
        assert_eq!(c.verify_header(None), Err(AuthError::Missing));
        assert_eq!(c.verify_header(Some("Bearer x")), Err(AuthError::Missing));
        assert_eq!(
            c.verify_header(Some("token nocolon")),
            Err(AuthError::Missing)
        );
        assert_eq!(c.verify_header(Some("")), Err(AuthError::Missing));
    }

    #[test]
    fn parse_rejects_bad_lines() {
        assert!(Credentials::parse("").is_err());
        assert!(
            Credentials::parse("justauser")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert!(Credentials::parse("a:").is_err());
    }

    #[test]
    fn debug_does_not_leak() {
        assert_eq!(format!("{:?}", creds()), "Credentials(2 entries)");
    }
}
