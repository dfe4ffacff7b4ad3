//! Secret references resolved to files: `<secrets-dir>/<name>/<key>`.
//!
//! In a cluster the operator mounts each referenced Secret at `<secrets-dir>/<name>`, so
//! every key is a file; on a laptop a plain folder does the same. Secret values never
//! appear in logs or errors, only their names.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use bounceops_api::SecretRef;

/// The most a Kubernetes Secret holds (all its keys together), so the most a secret file
/// can be. A bound, so that a file that never ends (`/dev/zero`) is an error, not a worker
/// that reads until it is killed.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Why a secret could not be read; the texts are those docs/troubleshooting.md lists.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0:?} is not a valid secret name or key")]
    InvalidName(String),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is larger than {} KiB, the most a Kubernetes Secret holds",
        path.display(),
        MAX_SECRET_BYTES / 1024
    )]
    TooLarge { path: PathBuf },
    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{} is empty", path.display())]
    Empty { path: PathBuf },
    /// [`SecretsDir::read_named`]'s wording: the reference first.
    #[error("secret {name}/{key}: {error}")]
    Named {
        name: String,
        key: String,
        error: Box<SecretError>,
    },
}

#[derive(Debug, Clone)]
pub struct SecretsDir(PathBuf);

impl SecretsDir {
    pub fn new(dir: impl Into<PathBuf>) -> SecretsDir {
        SecretsDir(dir.into())
    }

    /// The secret's value, without the trailing newline editors and `echo` leave behind.
    pub fn read(&self, r: &SecretRef) -> Result<String, SecretError> {
        // A Secret's name and key are DNS-ish names; refusing separators keeps a crafted
        // reference from reading files outside the secrets folder.
        for part in [&r.name, &r.key] {
            if part.is_empty() || part.contains(['/', '\\']) || part == ".." || part == "." {
                return Err(SecretError::InvalidName(part.clone()));
            }
        }
        let path = self.0.join(&r.name).join(&r.key);
        let bytes = read_bounded(&path).map_err(|source| SecretError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge { path });
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(SecretError::NotText { path });
        };
        let value = text.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty { path });
        }
        Ok(value)
    }

    /// [`SecretsDir::read`], its error naming the reference (`secret NAME/KEY: ...`), as
    /// every start-up error about a secret is worded.
    pub fn read_named(&self, r: &SecretRef) -> Result<String, SecretError> {
        self.read(r).map_err(|e| SecretError::Named {
            name: r.name.clone(),
            key: r.key.clone(),
            error: Box::new(e),
        })
    }
}

/// The file's bytes, up to one more than [`MAX_SECRET_BYTES`] (so that a caller can tell
/// a file that is too large), without a trailing newline's trimming.
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
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
                .to_string()
                .contains("cannot read")
        );
    }

    #[test]
    fn an_endless_or_binary_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("k")).unwrap();
        std::fs::write(dir.path().join("k/bin"), [0xff, 0xfe, 0x00]).unwrap();
        let s = SecretsDir::new(dir.path());
        std::fs::create_dir(dir.path().join("z")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("z/endless")).unwrap();
        let e = s.read(&r("z", "endless")).unwrap_err().to_string();
        assert!(e.contains("larger than 1024 KiB"), "{e}");
        let e = s.read(&r("k", "bin")).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn refuses_path_tricks() {
        let s = SecretsDir::new("/nonexistent");
        assert!(
            s.read(&r("..", "passwd"))
                .unwrap_err()
                .to_string()
                .contains("not a valid")
        );
        for (name, key) in [("a/b", "c"), ("a", "")] {
            let e = s.read(&r(name, key)).unwrap_err();
            assert!(e.to_string().contains("not a valid"), "{e}");
        }
    }
}
