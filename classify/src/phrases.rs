//! Owns phrase-list matching: a list is found in one pass over a text,
//! ASCII letters in either case, without a lower-cased copy of the text (the
//! same answer as `text.to_ascii_lowercase().contains(p)` for each lower-case
//! phrase `p`).
//!
//! [`Phrases`], for lists searched for any or every occurrence, runs this
//! crate's own automaton (`automaton.rs` says why); [`Search`], for a rare
//! phrase that a prefilter skips to or a leftmost-first search, runs
//! aho-corasick's.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Match, MatchKind};

use crate::automaton::{Automaton, Hit};

pub(crate) struct Phrases(Automaton);

impl Phrases {
    /// Phrases in lower case (an upper-case ASCII letter in one is taken as
    /// its lower case).
    pub(crate) fn new(list: &[&str]) -> Phrases {
        Phrases(Automaton::new(list))
    }

    /// Whether any phrase of the list occurs in `text`.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.0.overlapping(text).next().is_some()
    }

    /// Every occurrence of every phrase, in order of their ends.
    pub(crate) fn find_overlapping<'a>(&'a self, text: &'a str) -> impl Iterator<Item = Hit> + 'a {
        self.0.overlapping(text)
    }
}

pub(crate) struct Search {
    ac: AhoCorasick,
    /// The bytes the phrases hold, a letter in both cases.
    bytes: [bool; 256],
}

impl Search {
    /// For phrases that seldom occur in a text at all: a prefilter skips
    /// ahead to the few places where one could start.
    pub(crate) fn rare(list: &[&str]) -> Search {
        Search::build(list, MatchKind::Standard, true)
    }

    /// Finds the leftmost occurrence, preferring the earlier phrase of the
    /// list where two start at the same place.
    pub(crate) fn leftmost_first(list: &[&str]) -> Search {
        Search::build(list, MatchKind::LeftmostFirst, false)
    }

    fn build(list: &[&str], kind: MatchKind, prefilter: bool) -> Search {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(kind)
            .prefilter(prefilter)
            .build(list)
            .expect("static phrase list");
        let mut bytes = [false; 256];
        for &b in list.iter().flat_map(|p| p.as_bytes()) {
            bytes[b.to_ascii_lowercase() as usize] = true;
            bytes[b.to_ascii_uppercase() as usize] = true;
        }
        Search { ac, bytes }
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.ac.is_match(text)
    }

    /// `is_match` on bytes that need not be UTF-8.
    pub(crate) fn is_match_bytes(&self, text: &[u8]) -> bool {
        self.ac.is_match(text)
    }

    /// Whether a phrase holds byte `b` (a letter in either case).
    pub(crate) fn holds(&self, b: u8) -> bool {
        self.bytes[b as usize]
    }

    /// The first match: for a `leftmost_first` list the leftmost, for a
    /// `rare` one the one that ends first.
    pub(crate) fn find(&self, text: &str) -> Option<Match> {
        // Errors only for search options this DFA was not built for
        // (anchored searches); unanchored ones always succeed.
        self.ac.find(text)
    }
}

/// `text` with every run of whitespace that holds a line break, a tab or more
/// than one space made one space, so that a phrase an MTA wrapped across two
/// lines ("(in reply to RCPT\n    TO command)", as Postfix wraps its reports
/// at 80 columns) is still found. Most texts are one line already: borrowed
/// as they are.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    // Two SIMD scans (memchr) rather than a loop over every byte: this runs
    // on every diagnostic, and most are one line with single spaces.
    let bytes = text.as_bytes();
    let needs = memchr::memchr3(b'\n', b'\r', b'\t', bytes).is_some()
        || memchr::memmem::find(bytes, b"  ").is_some();
    if !needs {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split_ascii_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_blind_and_overlapping() {
        let p = Phrases::new(&["user unknown", "unknown"]);
        assert!(p.is_match("550 User UNKNOWN here"));
        assert!(!p.is_match("550 no such user"));
        let ends: Vec<usize> = p
            .find_overlapping("x user unknown")
            .map(|m| m.end)
            .collect();
        assert_eq!(ends, vec![14, 14]);
    }

    #[test]
    fn wrapped_lines_are_one() {
        assert_eq!(
            one_line("in reply to RCPT\n    TO command"),
            "in reply to RCPT TO command"
        );
        assert_eq!(one_line(" a\t b  c "), "a b c");
        assert!(matches!(
            one_line("550 user unknown"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn leftmost_first_prefers_the_earlier_phrase() {
        let p = Search::leftmost_first(&["the following", "the"]);
        let m = p.find("see the following").unwrap();
        assert_eq!((m.start(), m.end()), (4, 17));
    }
}
