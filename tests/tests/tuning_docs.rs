//! The README's table names every tuning variable the worker reads (worker/src/tuning.rs),
//! with the default the worker really has.

use bounce_worker::tuning::{Tuning, VARIABLES};
use bounceops_tests::read;

#[test]
fn the_readme_lists_every_tuning_variable_with_its_default() {
    let readme = read("README.md");
    let d = Tuning::default();
    let defaults = [
        d.writers as u64,
        d.request_timeout.as_secs(),
        d.unverified_body_bytes as u64,
        d.connections.header_read_timeout.as_secs(),
        d.connections.max_connections as u64,
        d.connections.shutdown_grace.as_secs(),
        u64::from(d.export.connections),
        d.export.stall.as_secs(),
        d.export.deadline.as_secs(),
    ];
    let mut wrong = Vec::new();
    for (name, default) in VARIABLES.iter().zip(defaults) {
        let row = format!("| `{name}` | {default} |");
        if !readme.contains(&row) {
            wrong.push(row);
        }
    }
    assert!(wrong.is_empty(), "README.md lacks the rows {wrong:#?}");
}
