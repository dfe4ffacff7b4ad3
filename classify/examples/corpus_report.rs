//! Prints the classifier's figures on an external bounce corpus (a folder holding
//! `expected.jsonl` and `emails/`), given as the argument or by `BOUNCEOPS_CORPUS`.
//!
//! `cargo run -p bounce-classify --release --example corpus_report -- /path/to/corpus [--verbose]`

#[path = "../tests/measure/mod.rs"]
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut verbose = false;
    let mut root = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            other => root = Some(PathBuf::from(other)),
        }
    }
    let Some(root) = root.or_else(measure::root_from_env) else {
        eprintln!(
            "usage: corpus_report CORPUS_DIR [--verbose] (or set {})",
            measure::CORPUS_VAR
        );
        return ExitCode::FAILURE;
    };
    let f = match measure::measure(&root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pct = |a: usize, b: usize| 100.0 * a as f64 / (b.max(1)) as f64;
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
    println!(
        "ARF -> complaint          {:.2}% ({}/{})",
        pct(f.arf_complaint, f.arf_total),
        f.arf_complaint,
        f.arf_total
    );
    println!(
        "vacation/delivered ok     {:.2}% ({}/{})",
        pct(f.not_bounce_ok, f.not_bounce_total),
        f.not_bounce_ok,
        f.not_bounce_total
    );
    println!(
        "bounces -> kind bounce    {:.2}% ({}/{})",
        pct(f.bounce_kind_ok, f.bounce_total),
        f.bounce_kind_ok,
        f.bounce_total
    );
    println!(
        "hardbounce=true -> hard   {:.2}% ({}/{})",
        pct(f.hard_ok, f.hard_total),
        f.hard_ok,
        f.hard_total
    );
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
    println!("\nreason agreement per expected reason:");
    let mut per: Vec<_> = f.reason_by_expected.iter().collect();
    per.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    for (reason, (n, ok)) in per {
        println!("  {reason:<16} {:>6.1}% ({ok}/{n})", pct(*ok, *n));
    }
    println!("\nlargest disagreements (expected -> got: count):");
    for (want, got, n) in f.top_confusions(15) {
        println!("  {want:<16} -> {got:<16} {n}");
    }
    if verbose {
        println!("\nmisses ({}):", f.misses.len());
        for m in &f.misses {
            println!("  {m}");
        }
    }
    ExitCode::SUCCESS
}
