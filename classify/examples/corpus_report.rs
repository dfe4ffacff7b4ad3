//! Prints the classifier's figures on an external bounce corpus (a folder holding
//! `expected.jsonl` and `emails/`), given as the argument or by `BOUNCEOPS_CORPUS`.
//!
//! `cargo run -p bounce-classify --release --example corpus_report -- /path/to/corpus [--verbose] [--half A|B]`
//!
//! Besides the whole corpus's figures it prints the reason agreement of each
//! half of the corpus (split by MTA family, `measure::Half`) with what was
//! given instead, so that a rule written on one half's misses (`--verbose
//! --half A` lists only those) is judged on the other half.

#[path = "../tests/measure/mod.rs"]
mod measure;

use measure::{Figures, Half};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut verbose = false;
    let mut root = None;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--half" => match args.next().as_deref() {
                Some("A" | "a") => only = Some(Half::A),
                Some("B" | "b") => only = Some(Half::B),
                other => {
                    eprintln!("--half takes A or B, not {other:?}");
                    return ExitCode::FAILURE;
                }
            },
            other => root = Some(PathBuf::from(other)),
        }
    }
    let Some(root) = root.or_else(measure::root_from_env) else {
        eprintln!(
            "usage: corpus_report CORPUS_DIR [--verbose] [--half A|B] (or set {})",
            measure::CORPUS_VAR
        );
        return ExitCode::FAILURE;
    };
    let m = match measure::measure(&root) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let f = &m.all;
    println!("messages                  {}", f.messages);
    println!(
        "recipient recall          {:.2}% ({}/{}; {} of them by the Original-Recipient where Sisimai names the Final-Recipient)",
        100.0 * f.recall(),
        f.found_recipients,
        f.expected_recipients,
        f.found_via_original
    );
    println!(
        "recipient precision       {:.2}% ({}/{})",
        100.0 * f.precision(),
        f.correct_reported,
        f.reported_recipients
    );
    println!(
        "DSN status agreement      {:.2}% ({}/{}; excludes {} Sisimai pseudo-statuses x.0.9xx, whose class matches hard/soft in {})",
        100.0 * f.status_agreement(),
        f.status_agree,
        f.status_expected,
        f.pseudo_status,
        f.pseudo_class_agree
    );
    ratio("ARF -> complaint          ", f.arf_complaint, f.arf_total);
    ratio(
        "vacation/delivered ok     ",
        f.not_bounce_ok,
        f.not_bounce_total,
    );
    ratio(
        "bounces -> kind bounce    ",
        f.bounce_kind_ok,
        f.bounce_total,
    );
    ratio("hardbounce=true -> hard   ", f.hard_ok, f.hard_total);
    println!(
        "reason agreement          {:.2}% ({}/{}; found recipients whose expected reason is a bounce reason)",
        100.0 * f.reason_agreement(),
        f.reason_agree,
        f.reason_expected
    );
    println!(
        "throughput (one thread)   {:.0} messages/s ({:.1} ms total)",
        f.per_second(),
        f.elapsed.as_secs_f64() * 1000.0
    );
    for half in [Half::A, Half::B] {
        let h = m.half(half);
        println!(
            "reason agreement, half {}  {:.2}% ({}/{}; {} messages)",
            half.name(),
            100.0 * h.reason_agreement(),
            h.reason_agree,
            h.reason_expected,
            h.messages
        );
    }
    println!("\nreason agreement per expected reason, and what was given instead:");
    print_reasons(f);
    println!("\nlargest disagreements (expected -> got: count):");
    for (want, got, n) in f.top_confusions(15) {
        println!("  {want:<16} -> {got:<16} {n}");
    }
    for half in [Half::A, Half::B] {
        println!(
            "\nhalf {} (families {}): reason per expected reason, and what was given instead:",
            half.name(),
            match half {
                Half::A => "a-m",
                Half::B => "n-z",
            }
        );
        print_reasons(m.half(half));
    }
    if verbose {
        let misses = match only {
            Some(half) => &m.half(half).misses,
            None => &f.misses,
        };
        println!("\nmisses ({}):", misses.len());
        for miss in misses {
            println!("  {miss}");
        }
    }
    ExitCode::SUCCESS
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / (b.max(1)) as f64
}

/// One line of the report: `label`, then `ok` of `total` as a percentage and as counts.
fn ratio(label: &str, ok: usize, total: usize) {
    println!("{label}{:.2}% ({ok}/{total})", pct(ok, total));
}

/// One line per expected reason: its agreement, then the confusion table's
/// row (the reasons given instead, with their counts).
fn print_reasons(f: &Figures) {
    let mut per: Vec<_> = f.reason_by_expected.iter().collect();
    per.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    for (reason, (n, ok)) in per {
        let instead: Vec<String> = f
            .given_instead(reason)
            .into_iter()
            .map(|(got, c)| format!("{got} {c}"))
            .collect();
        println!(
            "  {reason:<16} {:>6.1}% ({ok}/{n}){}{}",
            pct(*ok, *n),
            if instead.is_empty() {
                ""
            } else {
                "   instead: "
            },
            instead.join(", ")
        );
    }
}
