//! The benchmark commands the docs give (`bash bench/...`, `cargo bench ...`) and the smoke
//! steps `.ci/run` runs, so that a test can hold each documented benchmark to a smoke run in
//! CI (issue 26). The commands are read, not run: running every smoke inside the test suite
//! would take minutes, and `.ci/run` runs them right after the suite.

use crate::markdown::fenced_blocks;

/// What a benchmark command runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bench {
    /// `bash bench/...`: the script's path from the repository root.
    Script(String),
    /// `cargo bench -p PACKAGE --bench NAME`.
    Cargo { package: String, bench: String },
}

impl std::fmt::Display for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bench::Script(path) => write!(f, "bash {path}"),
            Bench::Cargo { package, bench } => {
                write!(f, "cargo bench -p {package} --bench {bench}")
            }
        }
    }
}

/// One command: what it runs, whether `BENCH_SMOKE=1` is among its leading assignments, and
/// its words from the assignments on, joined by single spaces (quotes dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub bench: Bench,
    pub smoke: bool,
    pub text: String,
}

/// Shell words of `line`, with '...' and "..." kept as one word (quotes dropped), and the
/// operators that end a command (`&&`, `||`, `;`, `|`) as words of their own. A small
/// reader rather than a shell-parsing crate: the docs' commands use nothing more.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, ';') => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
                out.push(";".into());
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// The benchmark commands of one shell line (a `#` comment already removed).
fn commands_of_line(line: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let words = words(line);
    for simple in words.split(|w| matches!(w.as_str(), "&&" | "||" | ";" | "|")) {
        let mut rest = simple;
        // `env` and `bench_smoke` (.ci/run's step helper) run the command that follows.
        while let Some((first, tail)) = rest.split_first() {
            if first == "env" || first == "bench_smoke" {
                rest = tail;
            } else {
                break;
            }
        }
        let assignments = rest.iter().take_while(|w| is_assignment(w)).count();
        let smoke = rest[..assignments].iter().any(|w| w == "BENCH_SMOKE=1");
        let cmd = &rest[assignments..];
        let bench = match cmd {
            [bash, script, ..] if bash == "bash" && script.starts_with("bench/") => {
                Some(Bench::Script(script.clone()))
            }
            [cargo, bench, args @ ..] if cargo == "cargo" && bench == "bench" => {
                let value = |flags: &[&str]| {
                    args.windows(2)
                        .find(|w| flags.contains(&w[0].as_str()))
                        .map(|w| w[1].clone())
                        .unwrap_or_default()
                };
                Some(Bench::Cargo {
                    package: value(&["-p", "--package"]),
                    bench: value(&["--bench"]),
                })
            }
            _ => None,
        };
        if let Some(bench) = bench {
            out.push(Command {
                bench,
                smoke,
                text: rest.join(" "),
            });
        }
    }
    out
}

/// A shell text's logical lines: `\` continuations joined, `#` comments removed.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        let code = match logical.trim_start().starts_with('#') {
            true => "",
            // A comment starts at a `#` after whitespace (not inside a word like `a#b`).
            false => logical
                .find(" #")
                .map_or(logical.as_str(), |i| &logical[..i]),
        };
        out.push(code.to_owned());
    }
    out
}

/// Every benchmark command a Markdown page gives, in its fenced blocks and its inline code
/// spans (which may wrap over lines).
pub fn documented(page: &str) -> Vec<Command> {
    let mut out = Vec::new();
    for block in fenced_blocks(page) {
        for line in shell_lines(&block.text) {
            out.extend(commands_of_line(&line));
        }
    }
    let mut prose = String::new();
    let mut in_fence = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        out.extend(commands_of_line(&span.replace('\n', " ")));
    }
    out
}

/// The smoke steps of a CI script: the `BENCH_SMOKE=1` benchmark commands after the line
/// that runs `marker` (the test suite), in order.
pub fn ci_smoke_steps(script: &str, marker: &str) -> Vec<Command> {
    let lines = shell_lines(script);
    let Some(start) = lines.iter().position(|l| l.trim() == marker) else {
        return Vec::new();
    };
    lines[start + 1..]
        .iter()
        .flat_map(|l| commands_of_line(l))
        .filter(|c| c.smoke)
        .collect()
}

/// What is wrong between the benchmark commands `pages` give (page name, Markdown), the
/// smoke steps of `ci` (after the line `marker`), and the benchmarks themselves, whose
/// source `source` returns (`None`: no such benchmark from the repository root). Empty when
/// every documented benchmark exists, has a smoke mode (its source names `BENCH_SMOKE`) and
/// a smoke step in CI, when every smoke command a page gives is one CI runs word for word,
/// and when every CI step's benchmark exists.
pub fn problems(
    pages: &[(String, String)],
    ci: &str,
    marker: &str,
    source: impl Fn(&Bench) -> Option<String>,
) -> Vec<String> {
    let steps = ci_smoke_steps(ci, marker);
    let mut given: std::collections::BTreeMap<Bench, Vec<(&str, Command)>> = Default::default();
    for (page, text) in pages {
        for command in documented(text) {
            given
                .entry(command.bench.clone())
                .or_default()
                .push((page.as_str(), command));
        }
    }
    let mut out = Vec::new();
    for (bench, places) in &given {
        let pages: Vec<&str> = places.iter().map(|(p, _)| *p).collect();
        match source(bench) {
            None => out.push(format!(
                "`{bench}` ({pages:?}): no such benchmark from the repository root"
            )),
            Some(text) if !text.contains("BENCH_SMOKE") => out.push(format!(
                "`{bench}` ({pages:?}): no smoke mode (BENCH_SMOKE=1)"
            )),
            Some(_) => {}
        }
        if !steps.iter().any(|s| &s.bench == bench) {
            out.push(format!(
                "`{bench}` ({pages:?}): CI runs no `BENCH_SMOKE=1` step of it after the tests"
            ));
        }
        for (page, command) in places.iter().filter(|(_, c)| c.smoke) {
            if !steps.iter().any(|s| s.text == command.text) {
                out.push(format!(
                    "{page} gives `{}`, which CI does not run as written",
                    command.text
                ));
            }
        }
    }
    for step in &steps {
        if source(&step.bench).is_none() {
            out.push(format!("CI's step `{}`: no such benchmark", step.text));
        }
    }
    out
}

#[cfg(test)]
mod tests {

    fn check(page: &str, ci: &str) -> Vec<String> {
        let pages = vec![("DOC.md".to_owned(), page.to_owned())];
        problems(&pages, ci, "bash scripts/test.sh", |b| match b {
            Bench::Script(p) if p == "bench/smoke.sh" => Some("BENCH_SMOKE".into()),
            Bench::Script(p) if p == "bench/plain.sh" => Some("no smoke".into()),
            _ => None,
        })
    }

    #[test]
    fn problems_name_what_is_missing() {
        let ci = "bash scripts/test.sh\nbench_smoke env BENCH_SMOKE=1 bash bench/smoke.sh\n";
        assert_eq!(check("`bash bench/smoke.sh 20`", ci), Vec::<String>::new());
        assert_eq!(
            check("`bash bench/plain.sh`", ci),
            [
                "`bash bench/plain.sh` ([\"DOC.md\"]): no smoke mode (BENCH_SMOKE=1)",
                "`bash bench/plain.sh` ([\"DOC.md\"]): CI runs no `BENCH_SMOKE=1` step of it after the tests",
            ]
        );
        assert_eq!(
            check("`bash bench/gone.sh`", ci),
            [
                "`bash bench/gone.sh` ([\"DOC.md\"]): no such benchmark from the repository root",
                "`bash bench/gone.sh` ([\"DOC.md\"]): CI runs no `BENCH_SMOKE=1` step of it after the tests",
            ]
        );
        assert_eq!(
            check("`BENCH_SMOKE=1 bash bench/smoke.sh --tiny`", ci),
            [
                "DOC.md gives `BENCH_SMOKE=1 bash bench/smoke.sh --tiny`, which CI does not run as written"
            ]
        );
        // A step before the tests does not count.
        let early = "bench_smoke env BENCH_SMOKE=1 bash bench/smoke.sh\nbash scripts/test.sh\n";
        assert_eq!(check("`bash bench/smoke.sh`", early).len(), 1);
    }
    use super::*;

    #[test]
    fn reads_commands_from_blocks_and_inline_spans() {
        let page = "Run `bash bench/a.sh 20` (release), or `BENCH_SMOKE=1 bash\nbench/b.sh`.\n\
                    ```sh\nKUBECONFIG=target/k cargo bench -p op --bench cold  # comment\n\
                    bash scripts/x.sh && bash bench/c/run.sh \\\n  --rounds 5\n\
                    # bash bench/commented.sh\n```\n";
        let got: Vec<(Bench, bool)> = documented(page)
            .into_iter()
            .map(|c| (c.bench, c.smoke))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Bench::Cargo {
                        package: "op".into(),
                        bench: "cold".into()
                    },
                    false
                ),
                (Bench::Script("bench/c/run.sh".into()), false),
                (Bench::Script("bench/a.sh".into()), false),
                (Bench::Script("bench/b.sh".into()), true),
            ]
        );
    }

    #[test]
    fn ci_steps_are_the_smoke_commands_after_the_tests() {
        let ci = "BENCH_SMOKE=1 bash bench/before.sh\nbash scripts/test.sh\n\
                  bench_smoke env BENCH_SMOKE=1 bash bench/a.sh\nbash bench/full.sh\n\
                  # BENCH_SMOKE=1 bash bench/commented.sh\n\
                  bench_smoke env BENCH_SMOKE=1 KUBECONFIG=k cargo bench --profile dev -p op --bench cold\n";
        let got: Vec<String> = ci_smoke_steps(ci, "bash scripts/test.sh")
            .iter()
            .map(|c| c.bench.to_string())
            .collect();
        assert_eq!(got, ["bash bench/a.sh", "cargo bench -p op --bench cold"]);
    }
}
