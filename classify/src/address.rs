//! Owns e-mail address recognition in free text and header values, and the
//! notion of "system" addresses (MAILER-DAEMON, postmaster...) that are never
//! a bounced subscriber.

use regex::Regex;
use std::sync::LazyLock;

// A pragmatic subset of RFC 5321 addresses: enough for every recipient seen in
// bounces (including RFC 2047-looking local parts some senders emit), strict enough not to swallow the `<`, `>`, `"` and `'` around them.
static ADDR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)[A-Za-z0-9_=?][A-Za-z0-9._%+=/!#$&*^{|}~?-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
        .expect("static regex")
});

/// Every address in `text` with its byte offset, lower-cased.
pub(crate) fn find_all(text: &str) -> Vec<(usize, String)> {
    ADDR.find_iter(text)
        .map(|m| (m.start(), clean(m.as_str())))
        .filter(|(_, a)| plausible(a))
        .collect()
}

/// The first address in `text`, lower-cased.
pub(crate) fn first(text: &str) -> Option<String> {
    ADDR.find_iter(text)
        .map(|m| clean(m.as_str()))
        .find(|a| plausible(a))
}

/// `text` when it is exactly one address (optionally in angle brackets),
/// lower-cased: for fields that must hold an address and nothing else.
pub(crate) fn exact(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text)
        .trim();
    let m = ADDR.find(text)?;
    let whole = m.start() == 0 && m.end() == text.len();
    let addr = clean(text);
    (whole && addr.len() == text.len() && plausible(&addr)).then_some(addr)
}

fn clean(addr: &str) -> String {
    addr.trim_matches(|c: char| c == '.' || c == '-')
        .to_ascii_lowercase()
}

fn plausible(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    // Message-IDs and tracking tokens look like addresses; their "domains"
    // rarely end in an alphabetic TLD, and their local parts are very long.
    let tld = domain.rsplit('.').next().unwrap_or("");
    !local.is_empty()
        && local.len() <= 64
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Addresses of mail systems rather than people: they appear in every bounce
/// as sender or contact and are never the failed recipient.
pub(crate) fn is_system(addr: &str) -> bool {
    let local = addr.split('@').next().unwrap_or("");
    let local = local.to_ascii_lowercase();
    [
        "mailer-daemon",
        "mailer_daemon",
        "maildaemon",
        "postmaster",
        "mail-daemon",
        "mailerdaemon",
        "double-bounce",
        "nobody",
        "no-reply",
        "noreply",
        "do-not-reply",
        "donotreply",
        "bounce",
        "bounces",
        "abuse",
    ]
    .iter()
    .any(|s| local == *s)
        || local.starts_with("mailer-daemon")
        || local.starts_with("postmaster")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bracketed_and_bare_addresses() {
        let found = find_all("<Kijitora@Example.JP>: host said, copy to neko@example.org.");
        let addrs: Vec<_> = found.into_iter().map(|(_, a)| a).collect();
        assert_eq!(addrs, ["kijitora@example.jp", "neko@example.org"]);
    }

    #[test]
    fn rejects_message_id_like_tokens() {
        assert!(first("<20050329.12345@192.0.2.1>").is_none());
    }

    #[test]
    fn exact_accepts_only_a_whole_address() {
        assert_eq!(
            exact(" Emma@Example.COM ").as_deref(),
            Some("emma@example.com")
        );
        assert_eq!(
            exact("<emma@example.com>").as_deref(),
            Some("emma@example.com")
        );
        for bad in [
            "",
            "<>",
            "emma",
            "emma@localhost",
            "emma@example.com, ben@example.com",
            "Emma <emma@example.com>",
            "emma@example.com (Emma)",
            "@relay.example.net:emma@example.com",
            "emma@example.com.",
        ] {
            assert_eq!(exact(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn system_addresses() {
        assert!(is_system("MAILER-DAEMON@example.com"));
        assert!(is_system("postmaster@example.com"));
        assert!(!is_system("kijitora@example.com"));
    }
}
