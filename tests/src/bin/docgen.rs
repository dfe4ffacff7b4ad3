//! Rewrites `docs/reference.md` from `crds/bounceconfig.yaml`:
//! `cargo run -q -p bounceops-tests --bin docgen` (`--check` only compares).

use std::process::ExitCode;

use bounceops_tests::reference::{CRD_PATH, REFERENCE_PATH, REGENERATE, reference_markdown};
use bounceops_tests::{read, repo_root};

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let page = match reference_markdown(&read(CRD_PATH)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("docgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = repo_root().join(REFERENCE_PATH);
    if check {
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if current != page {
            eprintln!("docgen: {REFERENCE_PATH} is stale; run `{REGENERATE}`");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&target, page) {
        eprintln!("docgen: cannot write {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    eprintln!("docgen: wrote {REFERENCE_PATH}");
    ExitCode::SUCCESS
}
