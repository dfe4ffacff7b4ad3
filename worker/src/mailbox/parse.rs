//! `bounce-worker parse [--json] FILE...`: the classifier run on message files, printed as
//! DESIGN §6 specifies (one JSON object per file) or as text for a human.

use std::io::Write;
use std::path::Path;

use bounce_classify::Classification;

/// The JSON object of one file.
pub fn json(file: &str, c: &Classification) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "kind": super::scan::kind_label(&c.kind),
        "recipients": c.recipients,
        "subscriber_uuid": c.subscriber_uuid,
        "campaign_uuid": c.campaign_uuid,
    })
}

/// A few lines for a human: the kind, then one line per recipient.
pub fn text(file: &str, c: &Classification) -> String {
    let mut out = format!("{file}: {}", super::scan::kind_label(&c.kind));
    if let Some(s) = &c.subscriber_uuid {
        out.push_str(&format!("  subscriber {s}"));
    }
    if let Some(s) = &c.campaign_uuid {
        out.push_str(&format!("  campaign {s}"));
    }
    out.push('\n');
    if c.too_many_recipients {
        out.push_str(&format!(
            "  names more than {} recipients: none is recorded\n",
            bounce_classify::MAX_RECIPIENTS
        ));
    }
    for r in &c.recipients {
        let t = r.bounce_type.as_str();
        out.push_str(&format!(
            "  {t:<9} {}  {}",
            r.email,
            r.status.as_deref().unwrap_or("-")
        ));
        if let Some(a) = &r.action {
            out.push_str(&format!("  {a}"));
        }
        if let Some(d) = &r.diagnostic {
            let d: String = d.split_whitespace().collect::<Vec<_>>().join(" ");
            let d: String = d.chars().take(120).collect();
            out.push_str(&format!("  {d}"));
        }
        out.push('\n');
    }
    out
}

/// Classifies each file and prints it; a file that cannot be read is reported on stderr
/// and the others still run. Returns whether every file was read and classified.
pub fn run(files: &[impl AsRef<Path>], as_json: bool) -> bool {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_read = true;
    for file in files {
        let file = file.as_ref();
        let shown = file.display().to_string();
        match std::fs::read(file) {
            Ok(raw) => {
                let Some(c) = super::scan::classify_guarded(&raw) else {
                    eprintln!("bounce-worker: {shown}: the classifier failed on this file");
                    all_read = false;
                    continue;
                };
                let printed = if as_json {
                    writeln!(out, "{}", json(&shown, &c))
                } else {
                    write!(out, "{}", text(&shown, &c))
                };
                if printed.is_err() {
                    return false; // stdout closed (e.g. piped into head)
                }
            }
            Err(e) => {
                eprintln!("bounce-worker: {shown}: cannot read: {e}");
                all_read = false;
            }
        }
    }
    all_read
}
