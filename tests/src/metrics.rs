//! Metric names: the ones the code registers, and the ones PromQL expressions use.
//!
//! The code's names are read from its source, not from a running process: every metric is
//! registered with its full name as one string literal (`"bounceops_..."`), so the literals
//! in the worker, the operator and the workspace crates they use are the exported names.
//! A literal inside `HistogramOpts::new(` is a histogram, which Prometheus exposes as
//! `_bucket`, `_sum` and `_count` series.

use std::collections::BTreeMap;
use std::path::Path;

use crate::repo_root;

/// Source trees whose metrics a scrape of the worker or the operator can show.
pub const SOURCE_DIRS: &[&str] = &["worker/src", "operator/src", "api/src", "classify/src"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Counter or gauge: the name is the series name.
    Plain,
    /// Histogram: `_bucket`, `_sum`, `_count`.
    Histogram,
}

/// Name -> kind, and the file that registers it, of every metric in [`SOURCE_DIRS`].
pub fn names_in_code() -> BTreeMap<String, (Kind, String)> {
    let root = repo_root();
    let mut out = BTreeMap::new();
    for dir in SOURCE_DIRS {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let rel = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
            for (name, kind) in literals(&text) {
                let e = out.entry(name).or_insert((kind, rel.clone()));
                if kind == Kind::Histogram {
                    e.0 = Kind::Histogram;
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whole string literals `"bounceops_..."` (lower case, digits, `_`) in Rust source.
pub fn literals(text: &str) -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("\"bounceops_") {
        let start = i + off + 1;
        let mut end = start;
        while end < bytes.len() && is_name_byte(bytes[end]) {
            end += 1;
        }
        // A bare prefix such as "bounceops_operator_" is not a metric name.
        if end < bytes.len() && bytes[end] == b'"' && bytes[end - 1] != b'_' {
            let before = &text[start.saturating_sub(160)..start];
            let kind = match before.rfind("HistogramOpts::new(") {
                // The literal is the first argument of that call: nothing but
                // whitespace between the parenthesis and the quote.
                Some(p)
                    if before[p + "HistogramOpts::new(".len()..before.len() - 1]
                        .trim()
                        .is_empty() =>
                {
                    Kind::Histogram
                }
                _ => Kind::Plain,
            };
            out.push((text[start..end].to_owned(), kind));
        }
        i = end.max(start);
    }
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// Every `bounceops_...` identifier in a PromQL expression.
pub fn names_in_promql(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("bounceops_") {
        let start = i + off;
        let preceded = start > 0 && (is_name_byte(bytes[start - 1]) || bytes[start - 1] == b':');
        let mut end = start;
        while end < bytes.len() && is_name_byte(bytes[end]) {
            end += 1;
        }
        if !preceded {
            out.push(expr[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Whether a series name in a query is exported by the code: a plain metric's own name,
/// or a histogram's `_bucket` / `_sum` / `_count`.
pub fn exported(series: &str, code: &BTreeMap<String, (Kind, String)>) -> bool {
    if let Some((Kind::Plain, _)) = code.get(series) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        series
            .strip_suffix(suffix)
            .is_some_and(|base| matches!(code.get(base), Some((Kind::Histogram, _))))
    })
}

/// The metric a series belongs to (a histogram's series map to the histogram).
pub fn family(series: &str, code: &BTreeMap<String, (Kind, String)>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && matches!(code.get(base), Some((Kind::Histogram, _)))
        {
            return base.to_owned();
        }
    }
    series.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_find_names_and_histograms() {
        let src = r#"
            use bounceops_api::X;
            counter("bounceops_events_total", "help", &["a"]);
            let h = HistogramVec::new(
                HistogramOpts::new(
                    "bounceops_scan_duration_seconds",
                    "help",
                ),
            );
            let s = "bounceops_not a name";
        "#;
        assert_eq!(
            literals(src),
            vec![
                ("bounceops_events_total".to_owned(), Kind::Plain),
                (
                    "bounceops_scan_duration_seconds".to_owned(),
                    Kind::Histogram
                ),
            ]
        );
    }

    #[test]
    fn promql_names_and_histogram_suffixes() {
        let expr = r#"histogram_quantile(0.9, sum by (le) (rate(bounceops_d_seconds_bucket{x="bounceops_no"}[5m]))) / bounceops_a_total"#;
        assert_eq!(
            names_in_promql(expr),
            vec![
                "bounceops_d_seconds_bucket",
                "bounceops_no",
                "bounceops_a_total"
            ]
        );
        let code = BTreeMap::from([
            (
                "bounceops_d_seconds".to_owned(),
                (Kind::Histogram, String::new()),
            ),
            ("bounceops_a_total".to_owned(), (Kind::Plain, String::new())),
        ]);
        assert!(exported("bounceops_d_seconds_bucket", &code));
        assert!(!exported("bounceops_d_seconds", &code));
        assert!(exported("bounceops_a_total", &code));
        assert!(!exported("bounceops_a_total_count", &code));
        assert_eq!(
            family("bounceops_d_seconds_sum", &code),
            "bounceops_d_seconds"
        );
    }
}
