//! Owns the automaton behind the phrase lists (`phrases::Phrases`):
//! Aho-Corasick as a DFA, ASCII letters matched in either case.
//!
//! Written by hand, although the aho-corasick crate builds the same
//! automaton, for its layout in memory. A walk reads one transition per byte
//! of text, each read waiting for the one before, so what a byte costs is how
//! far away its transition is. aho-corasick's DFA gives every state a row of
//! 4-byte state ids padded to a power of two, and under
//! `ascii_case_insensitive` a letter's two cases are two columns: 512 bytes
//! per state and 2.1 MB for the reason table (340 phrases), whose short walks
//! over diagnostics found most rows out of cache. Here a letter's cases share
//! a column, a row holds one entry per byte the list uses, one for every other
//! byte and one spare, rounded up to even (48 entries, 192 bytes, for the
//! reason table's 45 bytes: 786 KB in all), the states are
//! numbered breadth first so that the shallow ones, where a walk spends most
//! of its bytes, sit together, and a transition holds the next row's offset,
//! so a step is one table read and one addition. Measured in BENCHMARKS.md
//! (issue 23, fifth round). aho-corasick still serves the searches that need
//! its prefilter or its leftmost-first semantics (`phrases::Search`).

/// A phrase found in a text: which one (its index in the list) and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) pattern: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) struct Automaton {
    /// Byte to column: 0 for a byte no phrase holds, an ASCII letter's upper
    /// case the column of its lower case.
    columns: [u8; 256],
    /// Rows of transitions, `row` entries apart (`row` is even). A transition
    /// is the offset of the next state's row, plus 1 when that state ends a
    /// phrase: a matching state's row starts one entry further on, so a step
    /// adds the column to the transition as it is, and the odd offset says
    /// "look at the matches" without a second table.
    table: Vec<u32>,
    row: usize,
    /// The phrases ending at the state of rank `r`: `ends[first[r]..first[r + 1]]`,
    /// longest first, as a standard Aho-Corasick automaton reports them (a
    /// state's own phrase, then those of its failure state).
    first: Vec<u32>,
    ends: Vec<u32>,
    lens: Vec<u32>,
}

impl Automaton {
    /// An automaton for `list`, matching ASCII letters in either case and
    /// every other byte as it is. Lists are static: an empty phrase, or a list
    /// too large for 32-bit offsets and indices, is a bug, and panics.
    pub(crate) fn new(list: &[&str]) -> Automaton {
        let phrases: Vec<Vec<u8>> = list
            .iter()
            .map(|p| p.to_ascii_lowercase().into_bytes())
            .collect();
        assert!(phrases.iter().all(|p| !p.is_empty()), "an empty phrase");

        let mut columns = [0u8; 256];
        let mut width = 1usize;
        for &b in phrases.iter().flatten() {
            if columns[b as usize] == 0 {
                columns[b as usize] = u8::try_from(width).expect("at most 255 distinct bytes");
                width += 1;
            }
        }
        for b in b'a'..=b'z' {
            columns[b.to_ascii_uppercase() as usize] = columns[b as usize];
        }

        // The trie, states numbered as they are made.
        let mut children: Vec<Vec<(u8, usize)>> = vec![Vec::new()];
        let mut own: Vec<Vec<u32>> = vec![Vec::new()];
        for (i, p) in phrases.iter().enumerate() {
            let mut s = 0;
            for &b in p {
                let c = columns[b as usize];
                s = match children[s].iter().find(|(k, _)| *k == c) {
                    Some(&(_, t)) => t,
                    None => {
                        let t = children.len();
                        children.push(Vec::new());
                        own.push(Vec::new());
                        children[s].push((c, t));
                        t
                    }
                };
            }
            own[s].push(u32::try_from(i).expect("phrase list too large"));
        }

        // Breadth first: a state's failure is shallower, so its full row and
        // its matches are known before the state's own are made.
        let mut order = vec![0usize];
        let mut i = 0;
        while i < order.len() {
            order.extend(children[order[i]].iter().map(|&(_, t)| t));
            i += 1;
        }
        let n = order.len();
        let mut rank = vec![0usize; n];
        for (r, &s) in order.iter().enumerate() {
            rank[s] = r;
        }
        // `next[rank * width + column]`: the next state's rank.
        let mut next = vec![0usize; n * width];
        let mut fail = vec![0usize; n];
        let mut found: Vec<Vec<u32>> = vec![Vec::new(); n];
        for &s in &order {
            let (r, f) = (rank[s], fail[s]);
            if s != 0 {
                let inherited = found[f].clone();
                found[s].extend_from_slice(&own[s]);
                found[s].extend(inherited);
                for c in 0..width {
                    next[r * width + c] = next[rank[f] * width + c];
                }
            }
            for &(c, t) in &children[s] {
                let c = c as usize;
                fail[t] = if s == 0 {
                    0
                } else {
                    order[next[rank[f] * width + c]]
                };
                next[r * width + c] = rank[t];
            }
        }

        // A matching state's row starts one entry late: `width + 1` entries,
        // and even so that every row starts at an even offset.
        let row = (width + 2) & !1;
        let index = |n: usize| u32::try_from(n).expect("phrase list too large");
        let mut ends = Vec::new();
        let mut first = Vec::with_capacity(n + 1);
        let mut offset = vec![0u32; n];
        for (r, &s) in order.iter().enumerate() {
            let at = index(r * row);
            first.push(index(ends.len()));
            ends.extend_from_slice(&found[s]);
            offset[r] = if found[s].is_empty() { at } else { at + 1 };
        }
        first.push(index(ends.len()));
        let mut table = vec![0u32; n * row];
        for r in 0..n {
            let at = offset[r] as usize;
            for c in 0..width {
                table[at + c] = offset[next[r * width + c]];
            }
        }
        Automaton {
            columns,
            table,
            row,
            first,
            ends,
            lens: phrases.iter().map(|p| index(p.len())).collect(),
        }
    }

    /// Every occurrence of every phrase in `text`, in order of their ends
    /// (phrases ending at the same byte: the longest first).
    pub(crate) fn overlapping<'a>(&'a self, text: &'a str) -> Overlapping<'a> {
        Overlapping {
            automaton: self,
            text: text.as_bytes(),
            at: 0,
            state: 0,
            pending: 0..0,
        }
    }
}

pub(crate) struct Overlapping<'a> {
    automaton: &'a Automaton,
    text: &'a [u8],
    /// Bytes walked so far.
    at: usize,
    /// The current state's row offset.
    state: u32,
    /// The current state's phrases not yet returned, as a range of `ends`.
    pending: std::ops::Range<u32>,
}

impl Iterator for Overlapping<'_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        let a = self.automaton;
        loop {
            if let Some(k) = self.pending.next() {
                let pattern = a.ends[k as usize] as usize;
                return Some(Hit {
                    pattern,
                    start: self.at - a.lens[pattern] as usize,
                    end: self.at,
                });
            }
            let mut state = self.state;
            let mut at = self.at;
            let mut matched = false;
            // The hot loop: one read of `columns` (independent of the state,
            // so it runs ahead) and one of `table` per byte.
            while at < self.text.len() {
                let column = a.columns[self.text[at] as usize];
                state = a.table[state as usize + column as usize];
                at += 1;
                if state & 1 == 1 {
                    matched = true;
                    break;
                }
            }
            self.state = state;
            self.at = at;
            if !matched {
                return None;
            }
            let rank = state as usize / a.row;
            self.pending = a.first[rank]..a.first[rank + 1];
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The texts of the classifier's test messages (`tests/fixtures`), for
    /// checking the real phrase tables with [`agrees`].
    pub(crate) fn fixture_texts() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut texts: Vec<String> = std::fs::read_dir(&dir)
            .expect("tests/fixtures")
            .map(|e| std::fs::read(e.expect("entry").path()).expect("fixture"))
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .collect();
        assert!(texts.len() > 10, "fixtures missing in {}", dir.display());
        texts.sort();
        texts
    }

    /// The same occurrences, in the same order, as aho-corasick's standard
    /// overlapping search (the crate this replaces for these lists).
    pub(crate) fn agrees_on<T: AsRef<str>>(list: &[&str], texts: &[T]) {
        let ours = Automaton::new(list);
        let theirs = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(list)
            .expect("list");
        for text in texts.iter().map(AsRef::as_ref) {
            let found: Vec<Hit> = ours.overlapping(text).collect();
            let expected: Vec<Hit> = theirs
                .find_overlapping_iter(text)
                .map(|m| Hit {
                    pattern: m.pattern().as_usize(),
                    start: m.start(),
                    end: m.end(),
                })
                .collect();
            assert_eq!(found, expected, "{list:?} in {text:?}");
        }
    }

    fn agrees(list: &[&str], text: &str) {
        agrees_on(list, &[text]);
    }

    #[test]
    fn every_occurrence_in_either_case() {
        let list = [
            "user unknown",
            "unknown",
            "no such user",
            "user",
            "s u",
            "5.1.1",
        ];
        agrees(&list, "550 5.1.1 User Unknown; no such USER here");
        agrees(&list, "uuuser usser unknow unknownunknown");
        agrees(&list, "");
        agrees(&list, "nothing at all");
        let hits: Vec<(usize, usize)> = Automaton::new(&list)
            .overlapping("x user unknown")
            .map(|h| (h.pattern, h.end))
            .collect();
        // Ending at the same byte: the longer phrase first.
        assert_eq!(hits, vec![(3, 6), (0, 14), (1, 14)]);
    }

    #[test]
    fn bytes_outside_ascii_are_matched_as_they_are() {
        let list = ["für", "ÄRGER", "quota"];
        agrees(&list, "zu viel für QUOTA, ärger, ÄRGER, FÜR");
        agrees(&list, "\u{212a}elvin quota \u{0}\u{ff}");
    }

    #[test]
    fn a_phrase_listed_twice_is_reported_twice() {
        agrees(&["quota", "over", "quota"], "over quota");
        agrees(&["quota", "over quota", "quota"], "over quota, OVER QUOTA");
    }

    #[test]
    fn an_even_number_of_columns() {
        // 9 distinct bytes + column 0: rows of 12 entries (an odd count gives
        // rows of `width + 1`; both must agree).
        let list = ["user unknown", "unknown"];
        agrees(&list, "x user unknown, USER UNKNOWNunknown");
        agrees(&list, "");
    }

    #[test]
    fn no_phrase_at_all() {
        agrees(&[], "anything");
    }

    /// Random lists and random texts over a few characters (both cases, a
    /// non-ASCII letter, and in texts characters no phrase holds), so that
    /// walks go deep into the trie, fall back along failure links again and
    /// again, and are cut short.
    #[test]
    fn agrees_with_aho_corasick_on_random_lists_and_texts() {
        // xorshift64: deterministic, so a failure is reproducible.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let in_phrases = ['a', 'A', 'b', ' ', 'ü', 'c'];
        let in_texts = ['a', 'A', 'b', 'B', ' ', 'ü', 'Ü', 'c', 'Q', '\u{80}'];
        for _ in 0..3_000 {
            let list: Vec<String> = (0..next(8))
                .map(|_| {
                    (0..1 + next(5))
                        .map(|_| in_phrases[next(in_phrases.len())])
                        .collect()
                })
                .collect();
            let list: Vec<&str> = list.iter().map(String::as_str).collect();
            let text: String = (0..next(60))
                .map(|_| in_texts[next(in_texts.len())])
                .collect();
            agrees(&list, &text);
        }
    }
}
