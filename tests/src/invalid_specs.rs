//! One table of invalid BounceConfig specs: each row changes a valid spec in one way and
//! names the field at fault. Every row runs in four places:
//!
//! - `api/tests/invalid_specs.rs`: decoding then `bounceops_api::validate` name `field`;
//! - `worker/tests/invalid_specs.rs`: the `bounce-worker` binary refuses to start, naming
//!   the config file and `field`;
//! - `tests/tests/apiserver_crd.rs`: a real API server refuses the row as `server` says,
//!   or stores it when `server` is `None`;
//! - `operator/tests/invalid_specs.rs`: for the rows the server stores (the others never
//!   reach an operator), the operator sets `Degraded` with reason `InvalidSpec` naming
//!   `field`, publishes an Event, and creates no child.

use serde_json::{Value, json};

pub struct Invalid {
    /// What is wrong, in a few words.
    pub case: &'static str,
    /// The spec, in full.
    pub spec: Value,
    /// The field the worker and the operator name: what `bounceops_api::validate` reports,
    /// or decoding, for a value the types cannot hold.
    pub field: &'static str,
    /// How the API server refuses it; `None` when the server stores it, and only the
    /// operator's status and the worker's start-up say it is wrong.
    pub server: Option<Refusal>,
}

/// The API server's answer to a row.
pub struct Refusal {
    /// The field path its message names.
    pub field: &'static str,
    /// Words of the message, as `docs/validation.md` quotes them.
    pub message: &'static str,
}

impl Refusal {
    /// Whether the server's message says what this row expects. Length limits are worded
    /// by version: `may not be more than 64 bytes` from Kubernetes 1.32 on, `Too long: may
    /// not be longer than 64` before. Both name the field and the limit, so both count.
    pub fn said_in(&self, message: &str) -> bool {
        if message.contains(self.message) {
            return true;
        }
        self.message
            .strip_prefix("may not be more than ")
            .and_then(|rest| rest.strip_suffix(" bytes"))
            .is_some_and(|limit| {
                let old = format!("may not be longer than {limit}");
                message.match_indices(&old).any(|(at, _)| {
                    !message[at + old.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
    }
}

impl Invalid {
    /// Whether a real API server stores it, so that an operator sees it.
    pub fn reaches_the_operator(&self) -> bool {
        self.server.is_none()
    }
}

/// A valid spec that every row starts from: a database, API credentials, one POP3 and one
/// IMAP mailbox, two providers and an Ingress.
pub fn valid_spec() -> Value {
    json!({
        "database": {"urlSecretRef": {"name": "listmonk-db", "key": "url"}},
        "api": {"credentialsSecretRef": {"name": "bounce-api", "key": "credentials"}},
        "rules": {"soft": {"count": 2, "action": "none"}, "hard": {"count": 1, "action": "blocklist"}},
        "providers": {"sendgrid": {"enabled": true, "publicKeySecretRef": {"name": "sendgrid", "key": "public-key"}},
                      "brevo": {"enabled": true, "tokenSecretRef": {"name": "brevo", "key": "token"}}},
        "mailboxes": [pop3(json!({})), imap(json!({}))],
        "webhook": {"replicas": 2, "ingress": {"enabled": true, "host": "bounces.example.com"}},
    })
}

fn pop3(extra: Value) -> Value {
    merge(
        json!({"name": "bounces", "protocol": "pop3", "host": "pop.example.com", "port": 995,
               "usernameSecretRef": {"name": "mailbox", "key": "username"},
               "passwordSecretRef": {"name": "mailbox", "key": "password"}}),
        extra,
    )
}

fn imap(extra: Value) -> Value {
    merge(
        json!({"name": "imap", "protocol": "imap", "host": "imap.example.com", "port": 993,
               "usernameSecretRef": {"name": "mailbox", "key": "username"},
               "passwordSecretRef": {"name": "mailbox", "key": "password"}}),
        extra,
    )
}

/// RFC 7386 merge: objects merge key by key, `null` removes, anything else replaces.
pub fn merge(mut base: Value, patch: Value) -> Value {
    match (&mut base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    let old = b.remove(&k).unwrap_or(Value::Null);
                    b.insert(k, merge(old, v));
                }
            }
            base
        }
        (_, p) => p,
    }
}

/// A row the API server refuses: its path, then its words.
type Server = (&'static str, &'static str);

fn row(case: &'static str, patch: Value, field: &'static str, server: Option<Server>) -> Invalid {
    Invalid {
        case,
        spec: merge(valid_spec(), patch),
        field,
        server: server.map(|(field, message)| Refusal { field, message }),
    }
}

/// A row whose change is to the first mailbox (POP3).
fn mailbox_row(
    case: &'static str,
    pop3_extra: Value,
    field: &'static str,
    server: Option<Server>,
) -> Invalid {
    row(
        case,
        json!({"mailboxes": [pop3(pop3_extra), imap(json!({}))]}),
        field,
        server,
    )
}

/// A row whose change is to the second mailbox (IMAP).
fn imap_row(
    case: &'static str,
    extra: Value,
    field: &'static str,
    server: Option<Server>,
) -> Invalid {
    row(
        case,
        json!({"mailboxes": [pop3(json!({})), imap(extra)]}),
        field,
        server,
    )
}

/// A valid bounce MX, which the SMTP rows start from (the table's valid spec has none, so
/// that every other row is judged without it).
pub fn valid_smtp() -> Value {
    json!({"domains": ["bounces.example.com"],
           "verpKeySecretRef": {"name": "verp-key", "key": "key"},
           "tlsSecretName": "mx-tls"})
}

/// A row whose change is to `spec.smtp`, added to the valid spec.
fn smtp_row(
    case: &'static str,
    patch: Value,
    field: &'static str,
    server: Option<Server>,
) -> Invalid {
    row(
        case,
        json!({"smtp": merge(valid_smtp(), patch)}),
        field,
        server,
    )
}

pub fn valid_relay() -> Value {
    json!({"returnPathDomain": "bounces.example.com",
           "upstream": {"host": "smtp.example.com"},
           "credentialsSecretRef": {"name": "relay-logins", "key": "credentials"}})
}

/// A row whose change is to `spec.relay`, added to the valid spec with a valid `spec.smtp`.
fn relay_row(
    case: &'static str,
    patch: Value,
    field: &'static str,
    server: Option<Server>,
) -> Invalid {
    row(
        case,
        json!({"smtp": valid_smtp(), "relay": merge(valid_relay(), patch)}),
        field,
        server,
    )
}

/// A row where `name` is the only provider, enabled without its secret.
fn provider_row(
    case: &'static str,
    name: &str,
    field: &'static str,
    server_message: &'static str,
) -> Invalid {
    let mut spec = valid_spec();
    spec["providers"] = json!({ name: {"enabled": true} });
    Invalid {
        case,
        spec,
        field,
        server: Some(Refusal {
            field: "spec.providers",
            message: server_message,
        }),
    }
}

pub fn table() -> Vec<Invalid> {
    let many: Vec<Value> = (0..33)
        .map(|i| pop3(json!({"name": format!("m{i}")})))
        .collect();
    let many_limits: serde_json::Map<String, Value> = (0..17)
        .map(|i| (format!("example.com/r{i}"), json!("1")))
        .collect();
    let azure = |header: &str| {
        json!({"providers": {"azure": {"enabled": true, "secretHeader": header,
                                       "sharedSecretRef": {"name": "azure", "key": "secret"}}}})
    };
    vec![
        // Database and rules.
        row(
            "no database",
            json!({"database": null}),
            "spec.database",
            Some(("spec.database", "Required value")),
        ),
        row(
            "no database secret name",
            json!({"database": {"urlSecretRef": {"name": ""}}}),
            "spec.database.urlSecretRef.name",
            Some((
                "spec.database.urlSecretRef.name",
                "should be at least 1 chars long",
            )),
        ),
        row(
            "unknown database schema",
            json!({"database": {"schema": "mysql"}}),
            "spec.database.schema",
            Some(("spec.database.schema", "Unsupported value: \"mysql\"")),
        ),
        row(
            "one database connection",
            json!({"database": {"maxConnections": 1}}),
            "spec.database.maxConnections",
            Some((
                "spec.database.maxConnections",
                "should be greater than or equal to 2",
            )),
        ),
        row(
            "hard count 0",
            json!({"rules": {"hard": {"count": 0}}}),
            "spec.rules.hard.count",
            Some(("spec.rules.hard.count", "count must be between 1 and 1000")),
        ),
        row(
            "soft count 1001",
            json!({"rules": {"soft": {"count": 1001}}}),
            "spec.rules.soft.count",
            Some(("spec.rules.soft.count", "count must be between 1 and 1000")),
        ),
        row(
            "unknown action",
            json!({"rules": {"complaint": {"count": 1, "action": "explode"}}}),
            "spec.rules.complaint.action",
            Some((
                "spec.rules.complaint.action",
                "Unsupported value: \"explode\"",
            )),
        ),
        row(
            "window too long",
            json!({"rules": {"window": "1".repeat(65)}}),
            "spec.rules.window",
            Some(("spec.rules.window", "may not be more than 64 bytes")),
        ),
        row(
            "window not a duration",
            json!({"rules": {"window": "a fortnight"}}),
            "spec.rules.window",
            None,
        ),
        row(
            "window of zero",
            json!({"rules": {"window": "0s"}}),
            "spec.rules.window",
            None,
        ),
        row(
            "unknown reason",
            json!({"rules": {"reasons": {"blacklisted": {"type": "ignore"}}}}),
            "spec.rules.reasons.blacklisted",
            Some((
                "spec.rules.reasons",
                "keys must be reasons listed in docs/reasons.md",
            )),
        ),
        row(
            "reason rule of an unknown type",
            json!({"rules": {"reasons": {"blocked": {"type": "drop"}}}}),
            "spec.rules.reasons.blocked.type",
            Some((
                "spec.rules.reasons.blocked.type",
                "Unsupported value: \"drop\"",
            )),
        ),
        row(
            "reason rule without a type",
            json!({"rules": {"reasons": {"blocked": {}}}}),
            "spec.rules.reasons.blocked.type",
            Some(("spec.rules.reasons.blocked.type", "Required value")),
        ),
        row(
            "no API credentials",
            json!({"api": null}),
            "spec.api.credentialsSecretRef",
            None,
        ),
        row(
            "unknown field",
            json!({"replicas": 3}),
            "spec.replicas",
            Some(("spec.replicas", "unknown field \"spec.replicas\"")),
        ),
        // Mailboxes.
        mailbox_row(
            "mailbox port 0",
            json!({"port": 0}),
            "spec.mailboxes[0].port",
            Some(("spec.mailboxes[0].port", "port must be between 1 and 65535")),
        ),
        mailbox_row(
            "mailbox port 70000",
            json!({"port": 70000}),
            "spec.mailboxes[0].port",
            Some(("spec.mailboxes[0].port", "port must be between 1 and 65535")),
        ),
        mailbox_row(
            "unknown protocol",
            json!({"protocol": "smtp"}),
            "spec.mailboxes[0].protocol",
            Some(("spec.mailboxes[0].protocol", "Unsupported value: \"smtp\"")),
        ),
        mailbox_row(
            "unknown tls mode",
            json!({"tls": "ssl"}),
            "spec.mailboxes[0].tls",
            Some(("spec.mailboxes[0].tls", "Unsupported value: \"ssl\"")),
        ),
        mailbox_row(
            "auth none",
            json!({"auth": "none"}),
            "spec.mailboxes[0].auth",
            Some(("spec.mailboxes[0].auth", "Unsupported value: \"none\"")),
        ),
        mailbox_row(
            "no password secret",
            json!({"passwordSecretRef": null}),
            "spec.mailboxes[0].passwordSecretRef",
            Some(("spec.mailboxes[0].passwordSecretRef", "Required value")),
        ),
        mailbox_row(
            "empty mailbox name",
            json!({"name": ""}),
            "spec.mailboxes[0].name",
            Some(("spec.mailboxes[0].name", "should be at least 1 chars long")),
        ),
        mailbox_row(
            "blank mailbox name",
            json!({"name": "  "}),
            "spec.mailboxes[0].name",
            None,
        ),
        mailbox_row(
            "host too long",
            json!({"host": "h".repeat(254)}),
            "spec.mailboxes[0].host",
            Some(("spec.mailboxes[0].host", "may not be more than 253 bytes")),
        ),
        mailbox_row(
            "blank host",
            json!({"host": " "}),
            "spec.mailboxes[0].host",
            None,
        ),
        mailbox_row(
            "moveTo on POP3",
            json!({"moveTo": "Processed"}),
            "spec.mailboxes[0].moveTo",
            Some(("spec.mailboxes[0]", "moveTo is for IMAP mailboxes only")),
        ),
        mailbox_row(
            "no messages per scan",
            json!({"maxMessagesPerScan": 0}),
            "spec.mailboxes[0].maxMessagesPerScan",
            Some((
                "spec.mailboxes[0].maxMessagesPerScan",
                "should be greater than or equal to 1",
            )),
        ),
        mailbox_row(
            "message limit under 64 KiB",
            json!({"maxMessageBytes": 1024}),
            "spec.mailboxes[0].maxMessageBytes",
            Some((
                "spec.mailboxes[0].maxMessageBytes",
                "should be greater than or equal to 65536",
            )),
        ),
        mailbox_row(
            "scanInterval too long",
            json!({"scanInterval": "1".repeat(65)}),
            "spec.mailboxes[0].scanInterval",
            Some((
                "spec.mailboxes[0].scanInterval",
                "may not be more than 64 bytes",
            )),
        ),
        mailbox_row(
            "scanInterval not a duration",
            json!({"scanInterval": "soon"}),
            "spec.mailboxes[0].scanInterval",
            None,
        ),
        mailbox_row(
            "scanInterval under a second",
            json!({"scanInterval": "500ms"}),
            "spec.mailboxes[0].scanInterval",
            None,
        ),
        imap_row(
            "blank moveTo",
            json!({"moveTo": "  "}),
            "spec.mailboxes[1].moveTo",
            Some(("spec.mailboxes[1]", "moveTo must not be blank")),
        ),
        imap_row(
            "moveTo is the folder",
            json!({"folder": "Bounces", "moveTo": "Bounces"}),
            "spec.mailboxes[1].moveTo",
            Some(("spec.mailboxes[1]", "moveTo must differ from folder")),
        ),
        imap_row(
            "moveTo inbox, folder INBOX",
            json!({"moveTo": "inbox"}),
            "spec.mailboxes[1].moveTo",
            Some(("spec.mailboxes[1]", "moveTo must differ from folder")),
        ),
        imap_row(
            "moveTo not ASCII",
            json!({"moveTo": "Erledigt-ä"}),
            "spec.mailboxes[1].moveTo",
            None,
        ),
        imap_row(
            "moveTo with a line break",
            json!({"moveTo": "Done\r\nA1 DELETE INBOX"}),
            "spec.mailboxes[1].moveTo",
            None,
        ),
        imap_row(
            "folder too long",
            json!({"folder": "f".repeat(256)}),
            "spec.mailboxes[1].folder",
            Some(("spec.mailboxes[1].folder", "may not be more than 255 bytes")),
        ),
        row(
            "two mailboxes, one name",
            json!({"mailboxes": [pop3(json!({})), imap(json!({"name": "bounces"}))]}),
            "spec.mailboxes[1].name",
            Some(("spec.mailboxes[1]", "Duplicate value")),
        ),
        row(
            "33 mailboxes",
            json!({"mailboxes": many}),
            "spec.mailboxes",
            Some(("spec.mailboxes", "must have at most 32 items")),
        ),
        // Providers.
        provider_row(
            "sendgrid without key",
            "sendgrid",
            "spec.providers.sendgrid.publicKeySecretRef",
            "providers.sendgrid.publicKeySecretRef is required when enabled",
        ),
        provider_row(
            "postmark without credentials",
            "postmark",
            "spec.providers.postmark.credentialsSecretRef",
            "providers.postmark.credentialsSecretRef is required when enabled",
        ),
        provider_row(
            "forwardemail without key",
            "forwardemail",
            "spec.providers.forwardemail.keySecretRef",
            "providers.forwardemail.keySecretRef is required when enabled",
        ),
        provider_row(
            "mailgun without key",
            "mailgun",
            "spec.providers.mailgun.signingKeySecretRef",
            "providers.mailgun.signingKeySecretRef is required when enabled",
        ),
        provider_row(
            "lettermint without key",
            "lettermint",
            "spec.providers.lettermint.signingKeySecretRef",
            "providers.lettermint.signingKeySecretRef is required when enabled",
        ),
        provider_row(
            "azure without secret",
            "azure",
            "spec.providers.azure.sharedSecretRef",
            "providers.azure.sharedSecretRef is required when enabled",
        ),
        provider_row(
            "resend without secret",
            "resend",
            "spec.providers.resend.signingSecretRef",
            "providers.resend.signingSecretRef is required when enabled",
        ),
        provider_row(
            "brevo without credentials",
            "brevo",
            "spec.providers.brevo",
            "providers.brevo needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        provider_row(
            "mailjet without credentials",
            "mailjet",
            "spec.providers.mailjet",
            "providers.mailjet needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        provider_row(
            "sparkpost without credentials",
            "sparkpost",
            "spec.providers.sparkpost",
            "providers.sparkpost needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        row(
            "sendgrid tolerance 0",
            json!({"providers": {"sendgrid": {"toleranceSeconds": 0}}}),
            "spec.providers.sendgrid.toleranceSeconds",
            Some((
                "spec.providers.sendgrid.toleranceSeconds",
                "should be greater than or equal to 1",
            )),
        ),
        row(
            "too many SES topics",
            json!({"providers": {"ses": {"enabled": true, "topicArns": vec!["arn:aws:sns:eu-west-1:1:t"; 65]}}}),
            "spec.providers.ses.topicArns",
            Some(("spec.providers.ses.topicArns", "must have at most 64 items")),
        ),
        row(
            "SES topic not an ARN",
            json!({"providers": {"ses": {"enabled": true, "topicArns": ["ses-bounces"]}}}),
            "spec.providers.ses.topicArns[0]",
            None,
        ),
        row(
            "SES certificate pattern not a regular expression",
            json!({"providers": {"ses": {"enabled": true, "certUrlPattern": "https://(sns"}}}),
            "spec.providers.ses.certUrlPattern",
            None,
        ),
        row(
            "Azure secret header not a header name",
            azure("X Webhook Secret"),
            "spec.providers.azure.secretHeader",
            None,
        ),
        // Workers.
        row(
            "ingress without host",
            json!({"webhook": {"ingress": {"host": null}}}),
            "spec.webhook.ingress.host",
            Some(("spec.webhook.ingress", "an enabled ingress needs a host")),
        ),
        row(
            "101 replicas",
            json!({"webhook": {"replicas": 101}}),
            "spec.webhook.replicas",
            Some((
                "spec.webhook.replicas",
                "should be less than or equal to 100",
            )),
        ),
        row(
            "negative replicas",
            json!({"webhook": {"replicas": -1}}),
            "spec.webhook.replicas",
            Some((
                "spec.webhook.replicas",
                "should be greater than or equal to 0",
            )),
        ),
        row(
            "tiny body limit",
            json!({"webhook": {"maxBodyBytes": 100}}),
            "spec.webhook.maxBodyBytes",
            Some((
                "spec.webhook.maxBodyBytes",
                "should be greater than or equal to 1024",
            )),
        ),
        // Evidence.
        row(
            "evidence kept over ten years",
            json!({"evidence": {"keepDays": 3651}}),
            "spec.evidence.keepDays",
            Some((
                "spec.evidence.keepDays",
                "should be less than or equal to 3650",
            )),
        ),
        row(
            "evidence under 1 KiB",
            json!({"evidence": {"maxBytes": 100}}),
            "spec.evidence.maxBytes",
            Some((
                "spec.evidence.maxBytes",
                "should be greater than or equal to 1024",
            )),
        ),
        row(
            "evidence over 64 MiB",
            json!({"evidence": {"maxBytes": 67108865}}),
            "spec.evidence.maxBytes",
            Some((
                "spec.evidence.maxBytes",
                "should be less than or equal to 67108864",
            )),
        ),
        // Retention of the bounces kept in the workers' own tables.
        row(
            "unmatched bounces kept no day",
            json!({"retention": {"unmatchedDays": 0}}),
            "spec.retention.unmatchedDays",
            Some((
                "spec.retention.unmatchedDays",
                "should be greater than or equal to 1",
            )),
        ),
        row(
            "unmatched bounces kept over ten years",
            json!({"retention": {"unmatchedDays": 3651}}),
            "spec.retention.unmatchedDays",
            Some((
                "spec.retention.unmatchedDays",
                "should be less than or equal to 3650",
            )),
        ),
        row(
            "ignored bounces kept no day",
            json!({"retention": {"ignoredDays": 0}}),
            "spec.retention.ignoredDays",
            Some((
                "spec.retention.ignoredDays",
                "should be greater than or equal to 1",
            )),
        ),
        row(
            "ignored bounces kept over ten years",
            json!({"retention": {"ignoredDays": 3651}}),
            "spec.retention.ignoredDays",
            Some((
                "spec.retention.ignoredDays",
                "should be less than or equal to 3650",
            )),
        ),
        row(
            "dead letters kept no day",
            json!({"retention": {"deadLetterDays": 0}}),
            "spec.retention.deadLetterDays",
            Some((
                "spec.retention.deadLetterDays",
                "should be greater than or equal to 1",
            )),
        ),
        row(
            "17 resource limits",
            json!({"webhook": {"resources": {"limits": many_limits.clone()}}}),
            "spec.webhook.resources.limits",
            Some((
                "spec.webhook.resources.limits",
                "must have at most 16 items",
            )),
        ),
        row(
            "empty image",
            json!({"image": ""}),
            "spec.image",
            Some(("spec.image", "should be at least 1 chars long")),
        ),
        // The bounce MX.
        smtp_row(
            "no bounce domain",
            json!({"domains": []}),
            "spec.smtp.domains",
            Some(("spec.smtp.domains", "should have at least 1 items")),
        ),
        smtp_row(
            "33 bounce domains",
            json!({"domains": (0..33).map(|i| format!("b{i}.example.com")).collect::<Vec<_>>()}),
            "spec.smtp.domains",
            Some(("spec.smtp.domains", "must have at most 32 items")),
        ),
        smtp_row(
            "bounce domain without a dot",
            json!({"domains": ["localhost"]}),
            "spec.smtp.domains[0]",
            None,
        ),
        smtp_row(
            "bounce domain too long",
            json!({"domains": [format!("{}.example.com", "b".repeat(250))]}),
            "spec.smtp.domains[0]",
            Some(("spec.smtp.domains[0]", "may not be more than 253 bytes")),
        ),
        smtp_row(
            "no VERP key",
            json!({"verpKeySecretRef": null}),
            "spec.smtp.verpKeySecretRef",
            Some(("spec.smtp.verpKeySecretRef", "Required value")),
        ),
        smtp_row(
            "VERP prefix too long",
            json!({"verpPrefix": "bnce"}),
            "spec.smtp.verpPrefix",
            Some(("spec.smtp.verpPrefix", "may not be more than 3 bytes")),
        ),
        smtp_row(
            "VERP prefix with a dot",
            json!({"verpPrefix": "b."}),
            "spec.smtp.verpPrefix",
            Some(("spec.smtp.verpPrefix", "should match '^[A-Za-z0-9]+$'")),
        ),
        smtp_row(
            "bounce address without a local part",
            json!({"addresses": ["bounces.example.com"]}),
            "spec.smtp.addresses[0]",
            None,
        ),
        smtp_row(
            "feedback address too short",
            json!({"feedbackAddresses": ["a@"]}),
            "spec.smtp.feedbackAddresses[0]",
            Some((
                "spec.smtp.feedbackAddresses[0]",
                "should be at least 3 chars long",
            )),
        ),
        smtp_row(
            "SMTP message limit below 64 KiB",
            json!({"maxMessageBytes": 1024}),
            "spec.smtp.maxMessageBytes",
            Some((
                "spec.smtp.maxMessageBytes",
                "should be greater than or equal to 65536",
            )),
        ),
        smtp_row(
            "no recipient allowed",
            json!({"maxRecipients": 0}),
            "spec.smtp.maxRecipients",
            Some((
                "spec.smtp.maxRecipients",
                "should be greater than or equal to 1",
            )),
        ),
        smtp_row(
            "too many SMTP sessions",
            json!({"maxSessions": 10001}),
            "spec.smtp.maxSessions",
            Some((
                "spec.smtp.maxSessions",
                "should be less than or equal to 10000",
            )),
        ),
        smtp_row(
            "no SMTP error allowed",
            json!({"maxErrors": 0}),
            "spec.smtp.maxErrors",
            Some((
                "spec.smtp.maxErrors",
                "should be greater than or equal to 1",
            )),
        ),
        smtp_row(
            "SMTP command timeout under a second",
            json!({"commandTimeout": "500ms"}),
            "spec.smtp.commandTimeout",
            None,
        ),
        smtp_row(
            "SMTP data timeout not a duration",
            json!({"dataTimeout": "soon"}),
            "spec.smtp.dataTimeout",
            None,
        ),
        smtp_row(
            "SMTP port 0",
            json!({"port": 0}),
            "spec.smtp.port",
            Some(("spec.smtp.port", "port must be between 1 and 65535")),
        ),
        smtp_row(
            "SMTP port 70000",
            json!({"port": 70000}),
            "spec.smtp.port",
            Some(("spec.smtp.port", "port must be between 1 and 65535")),
        ),
        smtp_row(
            "SMTP replicas over 100",
            json!({"replicas": 101}),
            "spec.smtp.replicas",
            Some(("spec.smtp.replicas", "should be less than or equal to 100")),
        ),
        smtp_row(
            "SMTP Service of type ExternalName",
            json!({"service": {"type": "ExternalName"}}),
            "spec.smtp.service.type",
            Some((
                "spec.smtp.service.type",
                "Unsupported value: \"ExternalName\"",
            )),
        ),
        smtp_row(
            "empty SMTP TLS Secret name",
            json!({"tlsSecretName": ""}),
            "spec.smtp.tlsSecretName",
            Some(("spec.smtp.tlsSecretName", "should be at least 1 chars long")),
        ),
        smtp_row(
            "17 SMTP resource limits",
            json!({"resources": {"limits": many_limits.clone()}}),
            "spec.smtp.resources.limits",
            Some(("spec.smtp.resources.limits", "must have at most 16 items")),
        ),
        row(
            "relay without the bounce MX",
            json!({"relay": valid_relay()}),
            "spec.smtp",
            Some((
                "spec",
                "relay needs smtp: its return paths are the bounce MX's signed VERP addresses",
            )),
        ),
        relay_row(
            "relay return path outside the bounce domains",
            json!({"returnPathDomain": "mail.example.com"}),
            "spec.relay.returnPathDomain",
            Some(("spec", "relay.returnPathDomain must be one of smtp.domains")),
        ),
        relay_row(
            "relay Deployment without logins",
            json!({"credentialsSecretRef": null}),
            "spec.relay.credentialsSecretRef",
            Some((
                "spec.relay",
                "a relay Deployment (replicas above 0) needs credentialsSecretRef",
            )),
        ),
        relay_row(
            "relay upstream user without password",
            json!({"upstream": {"usernameSecretRef": {"name": "smtp", "key": "user"}}}),
            "spec.relay.upstream.passwordSecretRef",
            Some((
                "spec.relay.upstream",
                "usernameSecretRef and passwordSecretRef go together",
            )),
        ),
        relay_row(
            "relay upstream tls mode unknown",
            json!({"upstream": {"tls": "ssl"}}),
            "spec.relay.upstream.tls",
            Some(("spec.relay.upstream.tls", "Unsupported value: \"ssl\"")),
        ),
        relay_row(
            "relay upstream timeout over an hour",
            json!({"upstream": {"timeout": "2h"}}),
            "spec.relay.upstream.timeout",
            None,
        ),
        relay_row(
            "relay upstream pool of 0",
            json!({"upstream": {"poolSize": 0}}),
            "spec.relay.upstream.poolSize",
            Some((
                "spec.relay.upstream.poolSize",
                "should be greater than or equal to 1",
            )),
        ),
        relay_row(
            "relay port 0",
            json!({"port": 0}),
            "spec.relay.port",
            Some(("spec.relay.port", "port must be between 1 and 65535")),
        ),
        relay_row(
            "relay upstream port 0",
            json!({"upstream": {"port": 0}}),
            "spec.relay.upstream.port",
            Some((
                "spec.relay.upstream.port",
                "port must be between 1 and 65535",
            )),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wordings of real servers, 1.29 to 1.31 and 1.32 on, for one row of the table.
    #[test]
    fn a_length_refusal_is_matched_by_its_limit_in_either_wording() {
        let row = table()
            .into_iter()
            .find(|r| r.case == "window too long")
            .expect("the window row");
        let refusal = row.server.expect("refused by the server");
        let new = r#"BounceConfig.bounceops.io "invalid" is invalid: spec.rules.window: Too long: may not be more than 64 bytes"#;
        let old = r#"BounceConfig.bounceops.io "invalid" is invalid: spec.rules.window: Too long: may not be longer than 64"#;
        assert!(refusal.said_in(new));
        assert!(refusal.said_in(old));
        assert!(!refusal.said_in("spec.rules.window: Too long: may not be longer than 640"));
        assert!(!refusal.said_in("spec.rules.window: Invalid value"));
    }
}
