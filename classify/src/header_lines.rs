//! Owns finding a header field in a message's raw bytes from a byte that a
//! search found in it: the field's first line (folded lines walked up), its
//! name, its value and the header block it is in. The bound on a message's
//! structure (`bounds`) and the HTML bodies left out of mail-parser's work
//! (`unread_html`) both find their fields this way, before mail-parser has
//! read the message.

/// Whether `text` opens with `name` (ASCII case ignored).
pub(crate) fn named(text: &[u8], name: &[u8]) -> bool {
    text.get(..name.len())
        .is_some_and(|t| t.eq_ignore_ascii_case(name))
}

/// The start of the field whose value holds byte `at`: its line, or the
/// first line above it not folded (`None` for a line of the body, at the
/// message's start). `last`: the line and the answer of the byte asked
/// before, when it was earlier: a walk up folded lines that reaches it has
/// its answer (so a hostile run of indented lines is walked once).
pub(crate) fn field_start(
    raw: &[u8],
    at: usize,
    last: &mut Option<(usize, Option<usize>)>,
) -> Option<usize> {
    let first = memchr::memrchr(b'\n', &raw[..at]).map_or(0, |i| i + 1);
    let mut line = first;
    let found = loop {
        if let Some((seen, answer)) = *last
            && line <= seen
        {
            break answer;
        }
        if !matches!(raw.get(line), Some(b' ' | b'\t')) {
            break Some(line);
        }
        let Some(above) = line.checked_sub(1) else {
            break None;
        };
        line = memchr::memrchr(b'\n', &raw[..above]).map_or(0, |i| i + 1);
    };
    *last = Some((first, found));
    found
}

/// Where the header block holding the field at `field` starts: after the
/// blank line or the delimiter (a line opening `--`) above it, and no
/// earlier than `floor`.
pub(crate) fn block_start(raw: &[u8], field: usize, floor: usize) -> usize {
    let mut start = field;
    while start > floor {
        let line = memchr::memrchr(b'\n', &raw[..start - 1]).map_or(0, |i| i + 1);
        if line < floor || line + 1 == start || raw[line..].starts_with(b"--") {
            break;
        }
        start = line;
    }
    start
}

/// The starts of the lines from `from` up to `to`.
pub(crate) fn lines(raw: &[u8], from: usize, to: usize) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(from)
        .chain(memchr::memchr_iter(b'\n', &raw[from..to]).map(move |i| from + i + 1))
        .filter(move |&l| l < to)
}

/// The value of the field starting at `at`: after its colon, through its
/// folded lines.
pub(crate) fn field_value(raw: &[u8], at: usize) -> &[u8] {
    let rest = &raw[at..];
    let Some(colon) = memchr::memchr(b':', &rest[..rest.len().min(64)]) else {
        return &[];
    };
    let mut end = colon;
    while let Some(i) = memchr::memchr(b'\n', &rest[end..]) {
        end += i + 1;
        if !matches!(rest.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    &rest[colon + 1..end.max(colon + 1)]
}
