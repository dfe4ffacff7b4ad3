//! Prints the classification of each file as one JSON line, in the shape of
//! `bounce-worker parse --json`.
//!
//! `cargo run -p bounce-classify --example classify_files -- FILE...`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in std::env::args().skip(1) {
        match std::fs::read(&file) {
            Ok(raw) => {
                let c = bounce_classify::classify(&raw);
                let mut v = serde_json::to_value(&c).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("file".into(), file.clone().into());
                }
                println!("{v}");
            }
            Err(e) => {
                eprintln!("{file}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
