//! Every benchmark command that BENCHMARKS.md, README.md and docs/ give has a smoke mode,
//! and `.ci/run` runs that smoke after the test suite (issue 26): a documented benchmark
//! without one fails here. The smokes are not run here (minutes of builds and runs); this
//! holds the docs, the scripts and the CI steps to each other, and `.ci/run` runs them.

use std::collections::BTreeMap;

use bounceops_tests::bench_commands::{Bench, Command, ci_smoke_steps, documented};
use bounceops_tests::{read, repo_root};

/// The pages that give commands, by their path from the root.
fn pages() -> Vec<String> {
    let mut out = vec!["BENCHMARKS.md".to_owned(), "README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// The source of a `cargo bench` target: `<package folder>/benches/<name>.rs` of the
/// workspace member whose package is named `package`.
fn cargo_bench_source(package: &str, bench: &str) -> Option<String> {
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))?;
    members
        .split('"')
        .skip(1)
        .step_by(2)
        .find(|dir| {
            std::fs::read_to_string(repo_root().join(dir).join("Cargo.toml"))
                .is_ok_and(|t| t.contains(&format!("name = \"{package}\"")))
        })
        .and_then(|dir| {
            std::fs::read_to_string(
                repo_root()
                    .join(dir)
                    .join("benches")
                    .join(format!("{bench}.rs")),
            )
            .ok()
        })
}

#[test]
fn every_documented_benchmark_has_a_smoke_mode_that_ci_runs() {
    let steps = ci_smoke_steps(&read(".ci/run"), "bash scripts/test.sh");
    let mut given: BTreeMap<Bench, Vec<(String, Command)>> = BTreeMap::new();
    for page in pages() {
        for command in documented(&read(&page)) {
            given
                .entry(command.bench.clone())
                .or_default()
                .push((page.clone(), command));
        }
    }
    // The reader must see what is known to be there, or every check below passes on nothing.
    for known in [
        Bench::Script("bench/ingest.sh".into()),
        Bench::Script("bench/soak/run.sh".into()),
        Bench::Cargo {
            package: "bounce-operator".into(),
            bench: "cold_start".into(),
        },
    ] {
        assert!(
            given.contains_key(&known),
            "no `{known}` found in the docs: {:?}",
            given.keys().collect::<Vec<_>>()
        );
    }

    let mut problems = Vec::new();
    for (bench, places) in &given {
        let pages: Vec<&str> = places.iter().map(|(p, _)| p.as_str()).collect();
        let source = match bench {
            Bench::Script(path) => std::fs::read_to_string(repo_root().join(path)).ok(),
            Bench::Cargo { package, bench } => cargo_bench_source(package, bench),
        };
        match source {
            None => problems.push(format!(
                "`{bench}` ({pages:?}): no such benchmark from the repository root"
            )),
            Some(text) if !text.contains("BENCH_SMOKE") => problems.push(format!(
                "`{bench}` ({pages:?}): no smoke mode (BENCH_SMOKE=1)"
            )),
            Some(_) => {}
        }
        if !steps.iter().any(|s| &s.bench == bench) {
            problems.push(format!(
                "`{bench}` ({pages:?}): .ci/run runs no `BENCH_SMOKE=1` step of it after the tests"
            ));
        }
        // A smoke command the docs give is the one CI runs, word for word.
        for (page, command) in places.iter().filter(|(_, c)| c.smoke) {
            if !steps.iter().any(|s| s.text == command.text) {
                problems.push(format!(
                    "{page} gives `{}`, which .ci/run does not run as written",
                    command.text
                ));
            }
        }
    }
    for step in &steps {
        if let Bench::Script(path) = &step.bench
            && !repo_root().join(path).is_file()
        {
            problems.push(format!(".ci/run's step `{}`: no {path}", step.text));
        }
    }
    assert!(
        problems.is_empty(),
        "benchmarks the docs give and the smoke steps of .ci/run disagree:\n  {}",
        problems.join("\n  ")
    );
}
