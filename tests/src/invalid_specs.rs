//! One table of invalid BounceConfig specs: each row changes a valid spec in one way and
//! names the field the refusal must point at and the words `docs/validation.md` promises.
//! The API server suite (tests/tests/apiserver_crd.rs) sends every row to a real server.

use serde_json::{Value, json};

pub struct Invalid {
    /// What is wrong, in a few words.
    pub case: &'static str,
    /// The spec, in full.
    pub spec: Value,
    /// The field path the refusal names.
    pub field: &'static str,
    /// Words of the refusal, as `docs/validation.md` quotes them.
    pub message: &'static str,
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

fn row(case: &'static str, patch: Value, field: &'static str, message: &'static str) -> Invalid {
    Invalid {
        case,
        spec: merge(valid_spec(), patch),
        field,
        message,
    }
}

fn mailbox_row(
    case: &'static str,
    pop3_extra: Value,
    field: &'static str,
    message: &'static str,
) -> Invalid {
    row(
        case,
        json!({"mailboxes": [pop3(pop3_extra), imap(json!({}))]}),
        field,
        message,
    )
}

fn imap_row(
    case: &'static str,
    extra: Value,
    field: &'static str,
    message: &'static str,
) -> Invalid {
    row(
        case,
        json!({"mailboxes": [pop3(json!({})), imap(extra)]}),
        field,
        message,
    )
}

fn provider_row(
    case: &'static str,
    name: &str,
    field: &'static str,
    message: &'static str,
) -> Invalid {
    let mut spec = valid_spec();
    spec["providers"] = json!({ name: {"enabled": true} });
    Invalid {
        case,
        spec,
        field,
        message,
    }
}

pub fn table() -> Vec<Invalid> {
    let many: Vec<Value> = (0..33)
        .map(|i| pop3(json!({"name": format!("m{i}")})))
        .collect();
    let many_limits: serde_json::Map<String, Value> = (0..17)
        .map(|i| (format!("example.com/r{i}"), json!("1")))
        .collect();
    vec![
        row(
            "no database",
            json!({"database": null}),
            "spec.database",
            "Required value",
        ),
        row(
            "no database secret name",
            json!({"database": {"urlSecretRef": {"name": ""}}}),
            "spec.database.urlSecretRef.name",
            "should be at least 1 chars long",
        ),
        row(
            "unknown database schema",
            json!({"database": {"schema": "mysql"}}),
            "spec.database.schema",
            "Unsupported value: \"mysql\"",
        ),
        row(
            "one database connection",
            json!({"database": {"maxConnections": 1}}),
            "spec.database.maxConnections",
            "should be greater than or equal to 2",
        ),
        row(
            "hard count 0",
            json!({"rules": {"hard": {"count": 0}}}),
            "spec.rules.hard.count",
            "count must be between 1 and 1000",
        ),
        row(
            "soft count 1001",
            json!({"rules": {"soft": {"count": 1001}}}),
            "spec.rules.soft.count",
            "count must be between 1 and 1000",
        ),
        row(
            "unknown action",
            json!({"rules": {"complaint": {"count": 1, "action": "explode"}}}),
            "spec.rules.complaint.action",
            "Unsupported value: \"explode\"",
        ),
        row(
            "window too long",
            json!({"rules": {"window": "1".repeat(65)}}),
            "spec.rules.window",
            "may not be more than 64 bytes",
        ),
        row(
            "unknown field",
            json!({"replicas": 3}),
            "spec.replicas",
            "unknown field \"spec.replicas\"",
        ),
        mailbox_row(
            "mailbox port 0",
            json!({"port": 0}),
            "spec.mailboxes[0].port",
            "port must be between 1 and 65535",
        ),
        mailbox_row(
            "mailbox port 70000",
            json!({"port": 70000}),
            "spec.mailboxes[0].port",
            "port must be between 1 and 65535",
        ),
        mailbox_row(
            "unknown protocol",
            json!({"protocol": "smtp"}),
            "spec.mailboxes[0].protocol",
            "Unsupported value: \"smtp\"",
        ),
        mailbox_row(
            "unknown tls mode",
            json!({"tls": "ssl"}),
            "spec.mailboxes[0].tls",
            "Unsupported value: \"ssl\"",
        ),
        mailbox_row(
            "userpass without secrets",
            json!({"usernameSecretRef": null, "passwordSecretRef": null}),
            "spec.mailboxes[0]",
            "auth userpass needs usernameSecretRef and passwordSecretRef",
        ),
        mailbox_row(
            "empty mailbox name",
            json!({"name": ""}),
            "spec.mailboxes[0].name",
            "should be at least 1 chars long",
        ),
        mailbox_row(
            "host too long",
            json!({"host": "h".repeat(254)}),
            "spec.mailboxes[0].host",
            "may not be more than 253 bytes",
        ),
        mailbox_row(
            "moveTo on POP3",
            json!({"moveTo": "Processed"}),
            "spec.mailboxes[0]",
            "moveTo is for IMAP mailboxes only",
        ),
        mailbox_row(
            "no messages per scan",
            json!({"maxMessagesPerScan": 0}),
            "spec.mailboxes[0].maxMessagesPerScan",
            "should be greater than or equal to 1",
        ),
        imap_row(
            "blank moveTo",
            json!({"moveTo": "  "}),
            "spec.mailboxes[1]",
            "moveTo must not be blank",
        ),
        imap_row(
            "moveTo is the folder",
            json!({"folder": "Bounces", "moveTo": "Bounces"}),
            "spec.mailboxes[1]",
            "moveTo must differ from folder",
        ),
        imap_row(
            "moveTo inbox, folder INBOX",
            json!({"moveTo": "inbox"}),
            "spec.mailboxes[1]",
            "moveTo must differ from folder",
        ),
        imap_row(
            "folder too long",
            json!({"folder": "f".repeat(256)}),
            "spec.mailboxes[1].folder",
            "may not be more than 255 bytes",
        ),
        row(
            "two mailboxes, one name",
            json!({"mailboxes": [pop3(json!({})), imap(json!({"name": "bounces"}))]}),
            "spec.mailboxes[1]",
            "Duplicate value",
        ),
        row(
            "33 mailboxes",
            json!({"mailboxes": many}),
            "spec.mailboxes",
            "must have at most 32 items",
        ),
        provider_row(
            "sendgrid without key",
            "sendgrid",
            "spec.providers",
            "providers.sendgrid.publicKeySecretRef is required when enabled",
        ),
        provider_row(
            "postmark without credentials",
            "postmark",
            "spec.providers",
            "providers.postmark.credentialsSecretRef is required when enabled",
        ),
        provider_row(
            "forwardemail without key",
            "forwardemail",
            "spec.providers",
            "providers.forwardemail.keySecretRef is required when enabled",
        ),
        provider_row(
            "mailgun without key",
            "mailgun",
            "spec.providers",
            "providers.mailgun.signingKeySecretRef is required when enabled",
        ),
        provider_row(
            "lettermint without key",
            "lettermint",
            "spec.providers",
            "providers.lettermint.signingKeySecretRef is required when enabled",
        ),
        provider_row(
            "azure without secret",
            "azure",
            "spec.providers",
            "providers.azure.sharedSecretRef is required when enabled",
        ),
        provider_row(
            "resend without secret",
            "resend",
            "spec.providers",
            "providers.resend.signingSecretRef is required when enabled",
        ),
        provider_row(
            "brevo without credentials",
            "brevo",
            "spec.providers",
            "providers.brevo needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        provider_row(
            "mailjet without credentials",
            "mailjet",
            "spec.providers",
            "providers.mailjet needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        provider_row(
            "sparkpost without credentials",
            "sparkpost",
            "spec.providers",
            "providers.sparkpost needs tokenSecretRef or credentialsSecretRef when enabled",
        ),
        row(
            "sendgrid tolerance 0",
            json!({"providers": {"sendgrid": {"toleranceSeconds": 0}}}),
            "spec.providers.sendgrid.toleranceSeconds",
            "should be greater than or equal to 1",
        ),
        row(
            "too many SES topics",
            json!({"providers": {"ses": {"enabled": true, "topicArns": vec!["arn:aws:sns:eu-west-1:1:t"; 65]}}}),
            "spec.providers.ses.topicArns",
            "must have at most 64 items",
        ),
        row(
            "ingress without host",
            json!({"webhook": {"ingress": {"host": null}}}),
            "spec.webhook.ingress",
            "an enabled ingress needs a host",
        ),
        row(
            "101 replicas",
            json!({"webhook": {"replicas": 101}}),
            "spec.webhook.replicas",
            "should be less than or equal to 100",
        ),
        row(
            "negative replicas",
            json!({"webhook": {"replicas": -1}}),
            "spec.webhook.replicas",
            "should be greater than or equal to 0",
        ),
        row(
            "tiny body limit",
            json!({"webhook": {"maxBodyBytes": 100}}),
            "spec.webhook.maxBodyBytes",
            "should be greater than or equal to 1024",
        ),
        row(
            "17 resource limits",
            json!({"webhook": {"resources": {"limits": many_limits}}}),
            "spec.webhook.resources.limits",
            "must have at most 16 items",
        ),
        row(
            "empty image",
            json!({"image": ""}),
            "spec.image",
            "should be at least 1 chars long",
        ),
    ]
}
