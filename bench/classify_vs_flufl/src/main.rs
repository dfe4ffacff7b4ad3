//! bounce-classify's side of `run.sh`: the same files, the same scoring rule and the same
//! output line as `flufl_bench.py`, so the two can be compared in one table.
//!
//! `classify-bench CORPUS_DIR MIN_SECONDS` prints one JSON object.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn lower(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .expect("usage: classify-bench CORPUS_DIR [MIN_SECONDS]"),
    );
    let min_secs: f64 = args.next().map(|s| s.parse().unwrap()).unwrap_or(3.0);
    let expected = std::fs::read_to_string(root.join("expected.jsonl")).expect("expected.jsonl");
    let entries: Vec<Value> = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let raws: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| std::fs::read(root.join("emails").join(e["file"].as_str().unwrap())).unwrap())
        .collect();

    // Timing: whole passes over the corpus until MIN_SECONDS have gone by.
    let mut passes = 0usize;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(min_secs) || passes == 0 {
        for raw in &raws {
            std::hint::black_box(bounce_classify::classify(std::hint::black_box(raw)));
        }
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();

    // CLASSIFY_BENCH_SLOWEST=N: the N files that take longest, to see where time goes.
    if let Some(n) = std::env::var("CLASSIFY_BENCH_SLOWEST")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut per_file: Vec<(f64, &str)> = entries
            .iter()
            .zip(&raws)
            .map(|(e, raw)| {
                let t = Instant::now();
                for _ in 0..20 {
                    std::hint::black_box(bounce_classify::classify(raw));
                }
                (
                    t.elapsed().as_secs_f64() / 20.0,
                    e["file"].as_str().unwrap_or(""),
                )
            })
            .collect();
        per_file.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = per_file.iter().map(|p| p.0).sum();
        for (t, f) in per_file.iter().take(n) {
            eprintln!("{:>9.1} us  {:>5.1}%  {f}", t * 1e6, 100.0 * t / total);
        }
    }

    // Scoring (same rule as flufl_bench.py): every recipient a report names, whatever
    // the tool thinks of the message's kind.
    let (mut expected_n, mut found, mut reported, mut correct) = (0, 0, 0, 0);
    for (e, raw) in entries.iter().zip(&raws) {
        let got: BTreeSet<String> = bounce_classify::classify(raw)
            .recipients
            .iter()
            .map(|r| r.email.to_ascii_lowercase())
            .collect();
        let reason = e["reason"].as_str().unwrap_or("");
        let mut accepted: BTreeSet<String> = lower(&e["recipient"]).into_iter().collect();
        accepted.extend(lower(&e["recipient_alternates"]));
        accepted.extend(lower(&e["original_recipient"]));
        let alternates = lower(&e["recipient_alternates"]);
        let originals = lower(&e["original_recipient"]);
        if reason != "vacation" && reason != "delivered" {
            let wanted: BTreeSet<String> = e["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["recipient"].as_str())
                .map(str::to_ascii_lowercase)
                .collect();
            for w in wanted {
                expected_n += 1;
                if got.contains(&w)
                    || alternates.iter().any(|a| got.contains(a))
                    || originals.iter().any(|a| got.contains(a))
                {
                    found += 1;
                }
            }
        }
        reported += got.len();
        correct += got.iter().filter(|g| accepted.contains(*g)).count();
    }
    println!(
        "{}",
        json!({
            "tool": "bounce-classify",
            "messages": raws.len(),
            "passes": passes,
            "seconds": elapsed,
            "per_second": (raws.len() * passes) as f64 / elapsed,
            "expected": expected_n,
            "found": found,
            "reported": reported,
            "correct": correct,
        })
    );
}
