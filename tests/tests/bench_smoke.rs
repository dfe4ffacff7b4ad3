//! Every benchmark command that BENCHMARKS.md, README.md and docs/ give has a smoke mode,
//! and `.ci/run` runs that smoke after the test suite (issue 26): a documented benchmark
//! without one fails here. The smokes are not run here (minutes of builds and runs); this
//! holds the docs, the scripts and the CI steps to each other, and `.ci/run` runs them.

use bounceops_tests::bench_commands::{Bench, documented, problems};
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
    let pages: Vec<(String, String)> = pages()
        .into_iter()
        .map(|page| {
            let text = read(&page);
            (page, text)
        })
        .collect();
    // The reader must see what is known to be there, or every check passes on nothing.
    let given: Vec<Bench> = pages
        .iter()
        .flat_map(|(_, t)| documented(t))
        .map(|c| c.bench)
        .collect();
    for known in [
        Bench::Script("bench/ingest.sh".into()),
        Bench::Script("bench/soak/run.sh".into()),
        Bench::Cargo {
            package: "bounce-operator".into(),
            bench: "cold_start".into(),
        },
    ] {
        assert!(
            given.contains(&known),
            "no `{known}` found in the docs: {given:?}"
        );
    }
    let problems = problems(
        &pages,
        &read(".ci/run"),
        "bash scripts/test.sh",
        |bench| match bench {
            Bench::Script(path) => std::fs::read_to_string(repo_root().join(path)).ok(),
            Bench::Cargo { package, bench } => cargo_bench_source(package, bench),
        },
    );
    assert!(
        problems.is_empty(),
        "benchmarks the docs give and the smoke steps of .ci/run disagree:\n  {}",
        problems.join("\n  ")
    );
}
