//! Loading a `BounceConfig` YAML file into the worker's resolved settings.
//!
//! Everything that can be wrong with the configuration is found here, before anything
//! starts: unknown or mistyped fields, unreadable secrets, impossible values. Each error
//! names the file and the field, so a user can fix it without reading code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bounceops_api::{BounceConfig, BounceConfigSpec, DatabaseSchema, SecretRef};

use crate::auth::Credentials;
use crate::rules::Rules;
use crate::secrets::SecretsDir;

/// The worker's configuration, with every secret read and every value checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spec: BounceConfigSpec,
    pub database_url: String,
    pub rules: Rules,
    pub credentials: Credentials,
    pub max_body_bytes: usize,
    /// The enabled provider webhooks, their secrets read and keys parsed.
    pub providers: crate::providers::Registry,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
}

impl Settings {
    /// Reads and checks `file`; secrets come from `secrets`; `database_url_override` is the
    /// `DATABASE_URL` environment variable, which wins over the database secret.
    pub fn load(
        file: &Path,
        secrets: &SecretsDir,
        database_url_override: Option<String>,
    ) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        let spec = parse(&text).map_err(|(field, message)| ConfigError::Invalid {
            file: file.to_owned(),
            field,
            message,
        })?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        };
        let read_secret = |field: &str, r: &SecretRef| {
            secrets
                .read(r)
                .map_err(|e| invalid(field, format!("secret {}/{}: {e}", r.name, r.key)))
        };

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
        if spec.database.max_connections < 2 {
            return Err(invalid(
                "spec.database.maxConnections",
                "must be at least 2".into(),
            ));
        }

        for (field, rule) in [
            ("spec.rules.soft.count", spec.rules.soft),
            ("spec.rules.hard.count", spec.rules.hard),
            ("spec.rules.complaint.count", spec.rules.complaint),
        ] {
            if !(1..=1000).contains(&rule.count) {
                return Err(invalid(field, format!("{} is not in 1..=1000", rule.count)));
            }
        }
        let window = match &spec.rules.window {
            None => None,
            Some(text) => Some(parse_window(text).map_err(|m| invalid("spec.rules.window", m))?),
        };
        let rules = Rules {
            soft: spec.rules.soft,
            hard: spec.rules.hard,
            complaint: spec.rules.complaint,
            window,
            record_after_threshold: spec.rules.record_after_threshold,
        };

        let api = spec.api.as_ref().ok_or_else(|| {
            invalid(
                "spec.api.credentialsSecretRef",
                "required: the bounce API and the generic webhook need credentials".into(),
            )
        })?;
        let credentials_text =
            read_secret("spec.api.credentialsSecretRef", &api.credentials_secret_ref)?;
        let credentials = Credentials::parse(&credentials_text)
            .map_err(|m| invalid("spec.api.credentialsSecretRef", m))?;

        let max_body_bytes = usize::try_from(spec.webhook.max_body_bytes)
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| invalid("spec.webhook.maxBodyBytes", "must be at least 1024".into()))?;

        let providers = crate::providers::Registry::load(&spec.providers, secrets)
            .map_err(|(field, message)| invalid(&field, message))?;

        Ok(Settings {
            spec,
            database_url,
            rules,
            credentials,
            max_body_bytes,
            providers,
        })
    }

    /// Whether `migrate` creates listmonk-shaped tables even without `--standalone`.
    pub fn standalone(&self) -> bool {
        self.spec.database.schema == DatabaseSchema::Standalone
    }
}

/// Parses the YAML, accepting either a whole `BounceConfig` object or its bare `spec`.
/// Unknown fields are errors: a typo such as `recordAfterTreshold` would otherwise be
/// silently ignored and the user would get a default they did not ask for.
fn parse(text: &str) -> Result<BounceConfigSpec, (String, String)> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| ("(document)".to_owned(), e.to_string()))?;
    let is_object = value.get("apiVersion").is_some() || value.get("kind").is_some();
    let mut unknown = Vec::new();
    let spec = if is_object {
        let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        if text_of("apiVersion").as_deref() != Some("bounceops.io/v1alpha1")
            || text_of("kind").as_deref() != Some("BounceConfig")
        {
            return Err((
                "apiVersion/kind".into(),
                "expected apiVersion bounceops.io/v1alpha1 and kind BounceConfig".into(),
            ));
        }
        let cfg: BounceConfig = strict(value, &mut unknown)?;
        cfg.spec
    } else {
        strict(value, &mut unknown)?
    };
    // metadata and status belong to Kubernetes; anything else unknown is a mistake.
    unknown.retain(|path| {
        !["metadata", "status", "apiVersion", "kind"]
            .iter()
            .any(|k| path.starts_with(k))
    });
    if let Some(path) = unknown.first() {
        let field = if is_object {
            path.clone()
        } else {
            format!("spec.{path}")
        };
        return Err((field, "unknown field".into()));
    }
    Ok(spec)
}

fn strict<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    unknown: &mut Vec<String>,
) -> Result<T, (String, String)> {
    let mut note = |path: serde_ignored::Path| unknown.push(path.to_string());
    let ignored = serde_ignored::Deserializer::new(value, &mut note);
    serde_path_to_error::deserialize(ignored).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().to_string())
    })
}

/// Parses a window such as `720h`, `30d` or `1h30m`.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 720h or 30d: {e}"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
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
    fn database_url_env_wins() {
        let s = load(BASE, Some("postgres://other@127.0.0.1/x")).unwrap();
        assert_eq!(s.database_url, "postgres://other@127.0.0.1/x");
    }

    #[test]
    fn unknown_field_is_named() {
        let yaml = format!("{BASE}  rules: {{recordAfterTreshold: true}}\n");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(
            err.contains("spec.rules.recordAfterTreshold: unknown field"),
            "{err}"
        );
        assert!(err.contains("config.yaml"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let yaml = format!("{BASE}  rules: {{hard: {{count: many, action: blocklist}}}}\n");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(err.contains("spec.rules.hard.count"), "{err}");
    }

    #[test]
    fn bad_action_is_named() {
        let yaml = format!("{BASE}  rules: {{hard: {{count: 1, action: explode}}}}\n");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(err.contains("spec.rules.hard.action"), "{err}");
    }

    #[test]
    fn count_out_of_range() {
        let yaml = format!("{BASE}  rules: {{soft: {{count: 0, action: none}}}}\n");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(
            err.contains("spec.rules.soft.count: 0 is not in 1..=1000"),
            "{err}"
        );
    }

    #[test]
    fn window_is_parsed_or_rejected() {
        let s = load(&format!("{BASE}  rules: {{window: 720h}}\n"), None).unwrap();
        assert_eq!(s.rules.window, Some(Duration::from_secs(720 * 3600)));
        let err = load(&format!("{BASE}  rules: {{window: soon}}\n"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.rules.window"), "{err}");
    }

    #[test]
    fn missing_secret_names_field_and_path() {
        let yaml = BASE.replace("key: url", "key: nope");
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(err.contains("spec.database.urlSecretRef"), "{err}");
        assert!(err.contains("db/nope"), "{err}");
    }

    #[test]
    fn missing_api_credentials() {
        let yaml = BASE.replace(
            "  api: {credentialsSecretRef: {name: api, key: credentials}}\n",
            "",
        );
        let err = load(&yaml, None).unwrap_err().to_string();
        assert!(
            err.contains("spec.api.credentialsSecretRef: required"),
            "{err}"
        );
    }

    #[test]
    fn bare_spec_is_accepted() {
        let yaml = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: credentials}}\nbogus: 1\n";
        let err = load(yaml, None).unwrap_err().to_string();
        assert!(err.contains("spec.bogus: unknown field"), "{err}");
    }

    #[test]
    fn wrong_kind_rejected() {
        let yaml = BASE.replace("kind: BounceConfig", "kind: Deployment");
        assert!(load(&yaml, None).unwrap_err().to_string().contains("kind"));
    }
}
