//! Loading a `BounceConfig` YAML file into the worker's resolved settings.
//!
//! Everything that can be wrong with the configuration is found here, before anything
//! starts. The spec itself is judged by `bounceops_api` (decoding, then `validate`: the
//! same judgement the operator makes before it creates workers); what is left here is what
//! the spec points at: secrets that must exist and hold usable values. Each error names
//! the file and the field, so a user can fix it without reading code.

use std::path::{Path, PathBuf};

use bounceops_api::{BounceConfigSpec, DatabaseSchema, Problem, SecretRef};

use crate::auth::Credentials;
use crate::rules::Rules;
use crate::secrets::SecretsDir;
use crate::tuning::Tuning;

/// The worker's configuration, with every secret read and every value checked. Its
/// `Debug` hides the secrets (the database password; the credentials and provider keys
/// print no value of their own).
#[derive(Clone)]
pub struct Settings {
    pub spec: BounceConfigSpec,
    pub database_url: String,
    pub rules: Rules,
    pub credentials: Credentials,
    pub max_body_bytes: usize,
    /// The enabled provider webhooks, their secrets read and keys parsed.
    pub providers: crate::providers::Registry,
    /// Which Secrets were read: with the database only, no webhook is served.
    pub reads: Reads,
    /// What tunes this one process (writers, timeouts, the export's and the HTTP
    /// connections' limits): from the environment, not the spec (crate::tuning).
    pub tuning: Tuning,
    /// The bounce MX (`spec.smtp`), its keys and certificate read: only by the processes
    /// that serve it (`Reads::Everything` or `Reads::Smtp`) and only when the spec has it.
    pub smtp: Option<crate::smtp::SmtpConfig>,
    /// The sending relay (`spec.relay`), its Secrets read: only by the relay's process
    /// (`Reads::Relay`).
    pub relay: Option<crate::relay::RelayConfig>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("spec", &self.spec)
            .field("database_url", &redacted(&self.database_url))
            .field("rules", &self.rules)
            .field("credentials", &self.credentials)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("providers", &self.providers)
            .field("reads", &self.reads)
            .field("tuning", &self.tuning)
            .field("smtp", &self.smtp)
            .field("relay", &self.relay)
            .finish()
    }
}

/// A database URL with its password replaced by `***` (all of it when it does not parse).
pub fn redacted(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

/// The largest configuration file read: a Kubernetes ConfigMap (where the operator puts it)
/// holds 1 MiB at most, and a BounceConfig is a few KiB. Reading stops there, so a path
/// such as `/dev/zero` fails at once instead of filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The most `[` and `{` a configuration file may hold. The YAML parser's time grows with
/// nesting (200 KB of `[` took 16 s; 50,000 nested `{a: ` 94 s), and its own depth limit
/// acts only after the whole document is parsed. Counting every bracket, quoted or not, is
/// cruder than measuring the depth but cannot be fooled by brackets hidden in strings or
/// comments; the examples hold at most 16, and 1,000 parse in milliseconds.
pub const MAX_FLOW_COLLECTIONS: usize = 1000;

/// Reads `file` up to [`MAX_CONFIG_BYTES`] and refuses, before any YAML is parsed, a text
/// with more than [`MAX_FLOW_COLLECTIONS`] brackets.
fn read_bounded(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let read_error = |source| ConfigError::Read {
        file: file.to_owned(),
        source,
    };
    let shape = |message: String| ConfigError::Shape {
        file: file.to_owned(),
        message,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(shape(format!(
            "larger than {} KiB: not a BounceConfig (a ConfigMap holds 1 MiB at most)",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        shape(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if brackets > MAX_FLOW_COLLECTIONS {
        return Err(shape(format!(
            "{brackets} `[` or `{{` (at most {MAX_FLOW_COLLECTIONS}): refused before parsing, \
             as YAML nested that deep takes seconds to parse"
        )));
    }
    Ok(text)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Refused before parsing: larger than [`MAX_CONFIG_BYTES`], or more flow collections
    /// than [`MAX_FLOW_COLLECTIONS`].
    #[error("{file}: {message}")]
    Shape { file: PathBuf, message: String },
    /// The spec is wrong: what stopped it from decoding, or every problem `validate` found.
    #[error("{file}: {}", list(.problems))]
    Spec {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// What the spec points at is missing or unusable (a secret, `DATABASE_URL`).
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
}

fn list(problems: &[Problem]) -> String {
    let texts: Vec<String> = problems.iter().map(Problem::to_string).collect();
    texts.join("; ")
}

/// The Secrets a process reads. Each role reads only those it uses, so that its pods need
/// only those mounted (the operator mounts no others): the mailbox scanner and `migrate`
/// never read the API credentials or the providers' keys. The whole spec is checked either
/// way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// The database, the API credentials and the enabled providers' keys (webhooks, API).
    Everything,
    /// The database only; the API refuses every request and no provider is served.
    DatabaseOnly,
    /// The database and what the bounce MX needs: the VERP keys and the STARTTLS
    /// certificate (`spec.smtp`); as with `DatabaseOnly`, no API and no provider.
    Smtp,
    /// The database and what the sending relay needs: the VERP key that signs
    /// (`spec.smtp.verpKeySecretRef`), the upstream's login and authorities, the senders'
    /// logins and the STARTTLS certificate (`spec.relay`); no API, no provider, not the
    /// bounce MX's certificate.
    Relay,
}

impl Settings {
    /// [`Settings::load_for`] reading every Secret the spec references.
    pub fn load(
        file: &Path,
        secrets: &SecretsDir,
        database_url_override: Option<String>,
    ) -> Result<Settings, ConfigError> {
        Settings::load_for(file, secrets, database_url_override, Reads::Everything)
    }

    /// Reads and checks `file`; secrets come from `secrets`, those `reads` names only;
    /// `database_url_override` is the `DATABASE_URL` environment variable, which wins over
    /// the database secret.
    pub fn load_for(
        file: &Path,
        secrets: &SecretsDir,
        database_url_override: Option<String>,
        reads: Reads,
    ) -> Result<Settings, ConfigError> {
        let text = read_bounded(file)?;
        let refused = |problems: Vec<Problem>| ConfigError::Spec {
            file: file.to_owned(),
            problems,
        };
        let spec = bounceops_api::decode::spec_from_yaml(&text).map_err(|p| refused(vec![p]))?;
        let problems = bounceops_api::validate(&spec);
        if !problems.is_empty() {
            return Err(refused(problems));
        }
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        };
        let read_secret = |field: &str, r: &SecretRef| {
            secrets
                .read_named(r)
                .map_err(|e| invalid(field, e.to_string()))
        };

        // Optional in the spec so that a local run can name the database in DATABASE_URL
        // instead; in a cluster the operator requires the reference.
        let database_url = match (database_url_override, &spec.database.url_secret_ref) {
            (Some(url), _) if !url.is_empty() => url,
            (_, Some(r)) => read_secret("spec.database.urlSecretRef", r)?,
            (_, None) => {
                return Err(invalid(
                    "spec.database.urlSecretRef",
                    "required (or set DATABASE_URL)".into(),
                ));
            }
        };
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid(
                "spec.database.urlSecretRef",
                "the URL must start with postgres:// or postgresql://".into(),
            ));
        }

        let window = match &spec.rules.window {
            None => None,
            Some(text) => Some(
                bounceops_api::durations::window(text)
                    .map_err(|m| invalid("spec.rules.window", m.into()))?,
            ),
        };
        let mut reasons = std::collections::HashMap::new();
        for (name, rule) in &spec.rules.reasons {
            // validate refuses unknown names; this only guards a classifier that lost one.
            let reason = bounce_classify::Reason::from_name(name).ok_or_else(|| {
                invalid(
                    &format!("spec.rules.reasons.{name}"),
                    "not a reason listed in docs/reasons.md".into(),
                )
            })?;
            reasons.insert(reason, rule.treat_as);
        }
        let rules = Rules {
            soft: spec.rules.soft,
            hard: spec.rules.hard,
            complaint: spec.rules.complaint,
            window,
            record_after_threshold: spec.rules.record_after_threshold,
            reasons,
        };

        let (credentials, providers) = match reads {
            Reads::DatabaseOnly | Reads::Smtp | Reads::Relay => {
                (Credentials::none(), crate::providers::Registry::default())
            }
            Reads::Everything => {
                let api = spec
                    .api
                    .as_ref()
                    .expect("validate refuses a spec without spec.api");
                let text =
                    read_secret("spec.api.credentialsSecretRef", &api.credentials_secret_ref)?;
                let credentials = Credentials::parse(&text)
                    .map_err(|e| invalid("spec.api.credentialsSecretRef", e.to_string()))?;
                let providers = crate::providers::Registry::load(&spec.providers, secrets)
                    .map_err(|p| invalid(&p.field, p.message))?;
                (credentials, providers)
            }
        };

        let smtp = match (&spec.smtp, reads) {
            (Some(smtp), Reads::Everything | Reads::Smtp) => Some(
                crate::smtp::SmtpConfig::load(smtp, secrets)
                    .map_err(|p| invalid(&p.field, p.message))?,
            ),
            _ => None,
        };

        let relay = match (&spec.relay, &spec.smtp, reads) {
            (Some(relay), Some(smtp), Reads::Relay) => Some(
                crate::relay::RelayConfig::load(relay, smtp, secrets)
                    .map_err(|p| invalid(&p.field, p.message))?,
            ),
            _ => None,
        };

        // Beyond the address space (a 32-bit build) no body could be that large anyway.
        let max_body_bytes = usize::try_from(spec.webhook.max_body_bytes).unwrap_or(usize::MAX);

        let tuning = Tuning::from_env(spec.database.max_connections);
        Ok(Settings {
            spec,
            database_url,
            rules,
            credentials,
            max_body_bytes,
            providers,
            reads,
            tuning,
            smtp,
            relay,
        })
    }

    /// Whether `migrate` creates listmonk-shaped tables even without `--standalone`.
    pub fn standalone(&self) -> bool {
        self.spec.database.schema == DatabaseSchema::Standalone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn fixture(yaml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secrets/db/url", "postgres://u@127.0.0.1/db\n");
        write(dir.path(), "secrets/api/credentials", "demo:token\n");
        let file = write(dir.path(), "config.yaml", yaml);
        (dir, file)
    }

    const BASE: &str = "apiVersion: bounceops.io/v1alpha1\nkind: BounceConfig\nmetadata: {name: x}\nspec:\n  database: {urlSecretRef: {name: db, key: url}}\n  api: {credentialsSecretRef: {name: api, key: credentials}}\n";

    fn load(yaml: &str, env: Option<&str>) -> Result<Settings, ConfigError> {
        let (dir, file) = fixture(yaml);
        Settings::load(
            &file,
            &SecretsDir::new(dir.path().join("secrets")),
            env.map(str::to_owned),
        )
    }

    #[test]
    fn loads_object_and_reads_secrets() {
        let s = load(BASE, None).unwrap();
        assert_eq!(s.database_url, "postgres://u@127.0.0.1/db");
        assert!(s.credentials.check("demo", "token"));
        assert_eq!(s.max_body_bytes, 1 << 20);
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let settings = load(
            BASE,
            Some("postgres://bounce:hunter2@db.example:5432/listmonk"),
        )
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://bounce:***@db.example:5432/listmonk"),
            "{printed}"
        );
        assert_eq!(redacted("not a url hunter2"), "<unparsable URL>");
    }

    #[test]
    fn database_url_env_wins() {
        let s = load(BASE, Some("postgres://other@127.0.0.1/x")).unwrap();
        assert_eq!(s.database_url, "postgres://other@127.0.0.1/x");
    }

    #[test]
    fn the_window_becomes_a_duration() {
        let s = load(&format!("{BASE}  rules: {{window: 30d}}\n"), None).unwrap();
        assert_eq!(
            s.rules.window,
            Some(std::time::Duration::from_secs(30 * 86400))
        );
    }

    #[test]
    fn reason_rules_are_read_by_reason() {
        use bounce_classify::Reason;
        use bounceops_api::ReasonType;
        let s = load(
            &format!("{BASE}  rules: {{reasons: {{blocked: {{type: ignore}}, mailboxfull: {{type: soft}}}}}}\n"),
            None,
        )
        .unwrap();
        assert_eq!(
            s.rules.reasons,
            std::collections::HashMap::from([
                (Reason::Blocked, ReasonType::Ignore),
                (Reason::MailboxFull, ReasonType::Soft),
            ])
        );
        assert!(load(BASE, None).unwrap().rules.reasons.is_empty());
    }

    /// The judgement itself is bounceops_api's (api/tests/invalid_specs.rs runs the whole
    /// table); here: the file, then every problem, before any secret is read.
    #[test]
    fn a_refused_spec_names_the_file_and_every_field() {
        let yaml = format!("{BASE}  rules: {{soft: {{count: 0, action: none}}, window: soon}}\n")
            .replace("key: url", "key: nope");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(err.contains("config.yaml: "), "{err}");
        assert!(
            err.ends_with(
                "spec.rules.soft.count: must be between 1 and 1000; \
                 spec.rules.window: not a duration such as 720h or 30d"
            ),
            "{err}"
        );
        let err = load(
            &format!("{BASE}  rules: {{recordAfterTreshold: true}}\n"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("config.yaml: spec.rules.recordAfterTreshold: unknown field"),
            "{err}"
        );
    }

    /// A path that never ends (`/dev/zero`) and YAML nested 200,000 deep are refused in
    /// well under a second, naming the file; before, the first read until memory ran out
    /// and the second took 16 s.
    #[test]
    fn an_endless_or_deeply_nested_file_is_refused_fast() {
        let started = std::time::Instant::now();
        let err = Settings::load(
            Path::new("/dev/zero"),
            &SecretsDir::new("/nonexistent"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/dev/zero: larger than 1024 KiB: not a BounceConfig (a ConfigMap holds 1 MiB at most)"
        );
        for nested in ["[".repeat(200_000), "{a: ".repeat(50_000)] {
            let err = load(&nested, None).unwrap_err().to_string();
            assert!(err.contains("config.yaml: "), "{err}");
            assert!(
                err.contains("(at most 1000): refused before parsing"),
                "{err}"
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // Brackets in strings and comments count too; a config far below the bound loads.
        let inline = format!("{BASE}  # [{{ ]}}\n  rules: {{soft: {{count: 2, action: none}}}}\n");
        assert!(load(&inline, None).is_ok());
    }

    #[test]
    fn missing_secret_names_field_and_path() {
        let yaml = BASE.replace("key: url", "key: nope");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(err.contains("spec.database.urlSecretRef"), "{err}");
        assert!(err.contains("db/nope"), "{err}");
    }

    #[test]
    fn no_database_reference_needs_database_url() {
        let yaml = BASE.replace("{urlSecretRef: {name: db, key: url}}", "{}");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(
            err.contains("spec.database.urlSecretRef: required (or set DATABASE_URL)"),
            "{err}"
        );
        assert!(load(&yaml, Some("postgres://u@127.0.0.1/db")).is_ok());
    }
}
