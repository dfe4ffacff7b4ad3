//! The one judgement of whether a BounceConfig spec can run: every rule of the CRD (its
//! bounds and CEL rules) and every rule the API server cannot check (a duration that does
//! not parse, a folder name IMAP cannot carry). The operator calls it before creating
//! workers (a problem is the `Degraded` condition with reason `InvalidSpec`); the worker
//! calls it at start-up and refuses to run. docs/validation.md lists every check.
//!
//! Pure: it reads the spec and nothing else. What the spec points at (a Secret that does
//! not exist, a password with a line break) is checked where it is read.

mod mailboxes;
mod providers;
mod relay;
mod secret_refs;
mod smtp;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::{BounceConfigSpec, IngressSpec, Resources, RulesSpec};

/// What is wrong with one field of a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field's path from the object's root, e.g. `spec.mailboxes[0].scanInterval`.
    pub field: String,
    /// What is wrong. Independent of the value (the field names it), so that
    /// docs/validation.md can quote it.
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The config layer's error: a loader's refusal reaches `main` as it is.
impl std::error::Error for Problem {}

/// Every problem of `spec`, at most one per field; empty when the spec can run.
pub fn validate(spec: &BounceConfigSpec) -> Vec<Problem> {
    let mut r = Report::default();
    r.range(
        "spec.database.maxConnections",
        spec.database.max_connections,
        2,
        1000,
    );
    rules(&spec.rules, &mut r);
    if spec.api.is_none() {
        r.add(
            "spec.api.credentialsSecretRef",
            "required: the bounce API and the generic webhook need credentials",
        );
    }
    providers::check(&spec.providers, &mut r);
    mailboxes::check(&spec.mailboxes, &mut r);
    r.range("spec.webhook.replicas", spec.webhook.replicas, 0, 100);
    r.at_least(
        "spec.webhook.maxBodyBytes",
        spec.webhook.max_body_bytes,
        1024,
    );
    ingress(&spec.webhook.ingress, &mut r);
    if let Some(resources) = &spec.webhook.resources {
        self::resources("spec.webhook.resources", resources, &mut r);
    }
    if let Some(smtp) = &spec.smtp {
        smtp::check(smtp, &mut r);
    }
    if let Some(relay) = &spec.relay {
        relay::check(relay, spec.smtp.as_ref(), &mut r);
    }
    r.range("spec.evidence.keepDays", spec.evidence.keep_days, 0, 3650);
    r.range(
        "spec.evidence.maxBytes",
        spec.evidence.max_bytes,
        1024,
        64 << 20,
    );
    r.range(
        "spec.retention.unmatchedDays",
        spec.retention.unmatched_days,
        1,
        3650,
    );
    r.range(
        "spec.retention.ignoredDays",
        spec.retention.ignored_days,
        1,
        3650,
    );
    r.range(
        "spec.retention.deadLetterDays",
        spec.retention.dead_letter_days,
        1,
        3650,
    );
    r.optional_text("spec.image", spec.image.as_deref(), 512);
    secret_refs::check(spec, &mut r);
    r.0
}

fn rules(rules: &RulesSpec, r: &mut Report) {
    for (name, rule) in [
        ("soft", rules.soft),
        ("hard", rules.hard),
        ("complaint", rules.complaint),
    ] {
        r.range(&format!("spec.rules.{name}.count"), rule.count, 1, 1000);
    }
    if let Some(window) = &rules.window
        && r.text("spec.rules.window", window, 64)
        && let Err(e) = crate::durations::window(window)
    {
        r.add("spec.rules.window", e);
    }
    // More entries than there are reasons means unknown keys too; the count is the one
    // problem then, as the CRD's maxProperties is the API server's.
    let known = crate::REASONS;
    if rules.reasons.len() > known.len() {
        r.add(
            "spec.rules.reasons",
            format!("at most {} entries", known.len()),
        );
    } else {
        for name in rules.reasons.keys() {
            if !known.contains(&name.as_str()) {
                r.add(
                    &format!("spec.rules.reasons.{name}"),
                    "not a reason listed in docs/reasons.md",
                );
            }
        }
    }
}

fn ingress(ingress: &IngressSpec, r: &mut Report) {
    let field = |f: &str| format!("spec.webhook.ingress.{f}");
    match &ingress.host {
        None if ingress.enabled => r.add(&field("host"), "required when the ingress is enabled"),
        host => {
            r.optional_text(&field("host"), host.as_deref(), 253);
        }
    }
    r.optional_text(&field("className"), ingress.class_name.as_deref(), 253);
    r.optional_text(
        &field("tlsSecretName"),
        ingress.tls_secret_name.as_deref(),
        253,
    );
    annotations(&field("annotations"), &ingress.annotations, r);
}

/// Annotations the operator puts on a child (an Ingress, a Service): the CRD's bounds.
fn annotations(
    field: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    r: &mut Report,
) {
    if annotations.len() > 64 {
        r.add(field, "at most 64 entries");
    }
    for (key, value) in annotations {
        if value.chars().count() > 4096 {
            r.add(&format!("{field}[{key}]"), "at most 4096 characters");
        }
    }
}

/// Quantities are left to the API server, which refuses the Deployment if one is wrong;
/// the bounds are the CRD's, which keep its CEL cost estimate finite.
fn resources(at: &str, resources: &Resources, r: &mut Report) {
    for (name, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let field = format!("{at}.{name}");
        if map.len() > 16 {
            r.add(&field, "at most 16 entries");
        }
        for (key, value) in map {
            if value.chars().count() > 64 {
                r.add(&format!("{field}[{key}]"), "at most 64 characters");
            }
        }
    }
}

/// The problems found so far, and the checks every section shares.
#[derive(Default)]
struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(Problem::new(field, message));
    }

    /// A string of 1 to `max` characters, as the CRD bounds every string of the spec.
    /// Characters, not bytes: JSON Schema's `maxLength` counts them so. True when it holds.
    fn text(&mut self, field: &str, value: &str, max: usize) -> bool {
        if value.is_empty() {
            self.add(field, "must not be empty");
            false
        } else if value.chars().count() > max {
            self.add(field, format!("at most {max} characters"));
            false
        } else {
            true
        }
    }

    fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) -> bool {
        value.is_none_or(|v| self.text(field, v, max))
    }

    /// Like [`Report::text`], and not only white space either: such a name or host reads
    /// as empty to the person and the server alike.
    fn visible_text(&mut self, field: &str, value: &str, max: usize) -> bool {
        if !self.text(field, value, max) {
            return false;
        }
        if value.trim().is_empty() {
            self.add(field, "must not be blank");
            return false;
        }
        true
    }

    fn range<T: PartialOrd + fmt::Display>(&mut self, field: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.add(field, format!("must be between {min} and {max}"));
        }
    }

    fn at_least<T: PartialOrd + fmt::Display>(&mut self, field: &str, value: T, min: T) {
        if value < min {
            self.add(field, format!("must be at least {min}"));
        }
    }
}
