//! Shared helpers of the repository-wide checks in `tests/tests/`: where the repository
//! is, running helm, and the BounceConfig reference generator (`docgen`).

pub mod bench_commands;
pub mod cluster;
pub mod dovecot;
pub mod helm;
pub mod invalid_specs;
pub mod markdown;
pub mod metrics;
pub mod reference;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file of the repository as text, by its path from the root.
pub fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
