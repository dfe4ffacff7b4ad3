//! Secret references resolved to files: `<secrets-dir>/<name>/<key>`.
//!
//! In a cluster the operator mounts each referenced Secret at `<secrets-dir>/<name>`, so
//! every key is a file; on a laptop a plain folder does the same. Secret values never
//! appear in logs or errors, only their names.

use std::path::PathBuf;

use bounceops_api::SecretRef;

#[derive(Debug, Clone)]
pub struct SecretsDir(PathBuf);

impl SecretsDir {
    pub fn new(dir: impl Into<PathBuf>) -> SecretsDir {
        SecretsDir(dir.into())
    }

    /// The secret's value, without the trailing newline editors and `echo` leave behind.
    pub fn read(&self, r: &SecretRef) -> Result<String, String> {
        // A Secret's name and key are DNS-ish names; refusing separators keeps a crafted
        // reference from reading files outside the secrets folder.
        for part in [&r.name, &r.key] {
            if part.is_empty() || part.contains(['/', '\\']) || part == ".." || part == "." {
                return Err(format!("{part:?} is not a valid secret name or key"));
            }
        }
        let path = self.0.join(&r.name).join(&r.key);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value = text.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, key: &str) -> SecretRef {
        SecretRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn reads_and_trims() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/url"), "postgres://x\r\n").unwrap();
        let s = SecretsDir::new(dir.path());
        assert_eq!(s.read(&r("db", "url")).unwrap(), "postgres://x");
        assert!(
            s.read(&r("db", "missing"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn refuses_path_tricks() {
        let s = SecretsDir::new("/nonexistent");
        assert!(
            s.read(&r("..", "passwd"))
                .unwrap_err()
                .contains("not a valid")
        );
        assert!(s.read(&r("a/b", "c")).unwrap_err().contains("not a valid"));
        assert!(s.read(&r("a", "")).unwrap_err().contains("not a valid"));
    }
}
