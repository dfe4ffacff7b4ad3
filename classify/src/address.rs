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

/// The one rule of what an address must look like before a bounce is recorded for it,
/// wherever it comes from (the generic webhook, a provider's event, a report's text, the
/// bounce MX's configured addresses): one `@`-separated local part of 1 to 64 octets and a
/// domain that neither starts nor ends with a dot, 254 octets at most in all (RFC 5321
/// §4.5.3.1), and none of the white space, control characters or `<>,;"` that mean a list,
/// a display name or a quoted local part rather than one plain address.
pub fn well_formed(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    addr.len() <= 254
        && (1..=64).contains(&local.len())
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !has_forbidden_char(addr)
}

/// Whether `addr` holds whitespace, a control character or one of `<>,;"`.
/// Runs on every candidate address of every report: ASCII (nearly every
/// address) is checked byte by byte, and only other text char by char.
fn has_forbidden_char(addr: &str) -> bool {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c);
    if !addr.is_ascii() {
        return addr.chars().any(bad);
    }
    // For ASCII, `bad` is: a control (below 0x20, or DEL), the space, or one of `<>,;"`.
    addr.bytes()
        .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b',' | b';' | b'"'))
}

/// [`well_formed`], and likely a person's address rather than a look-alike found in a
/// report's text.
fn plausible(addr: &str) -> bool {
    // Message-IDs and tracking tokens look like addresses; their "domains"
    // rarely end in an alphabetic TLD.
    let tld = addr
        .rsplit_once('@')
        .map_or("", |(_, d)| d.rsplit('.').next().unwrap_or(""));
    well_formed(addr) && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
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

/// Addresses in the order first found, each once. A set beside the list: a message can
/// name tens of thousands (a hostile one), and looking each up in the list took time in
/// the square of their number (BENCHMARKS.md, "Fuzzing the classifier").
#[derive(Default)]
pub(crate) struct Distinct {
    list: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl Distinct {
    pub(crate) fn push(&mut self, address: String) {
        if self.seen.insert(address.clone()) {
            self.list.push(address);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_check_is_the_char_rule() {
        for b in 0u8..=0x7f {
            let c = b as char;
            let rule = c.is_whitespace() || c.is_control() || "<>,;\"".contains(c);
            assert_eq!(has_forbidden_char(&format!("a{c}b@c")), rule, "{b:#x}");
        }
        // Outside ASCII, the char rule itself: a no-break space, a C1 control.
        assert!(has_forbidden_char("a\u{a0}b@c"));
        assert!(has_forbidden_char("a\u{85}b@c"));
        assert!(!has_forbidden_char("jos\u{e9}@c"));
    }

    #[test]
    fn well_formed_addresses() {
        for ok in ["a@b", "first.last+tag@sub.example.org"] {
            assert!(well_formed(ok), "{ok}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("a@{}.com", "b".repeat(251));
        for bad in [
            "",
            "@b",
            "a@",
            "a b@c",
            "a@.b",
            "<a@b>",
            "a@b.",
            "a,b@c",
            "a\u{0}@b",
            "\"a\"@b",
            &long_local,
            &long,
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

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
