//! Any bytes at all must classify without panicking, and the result must keep the
//! invariants callers rely on (recipients only for bounces and complaints).
#![no_main]

use bounce_classify::{Kind, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c = classify(data);
    if !matches!(c.kind, Kind::Bounce | Kind::Complaint) {
        assert!(c.recipients.is_empty(), "{:?} with recipients", c.kind);
    }
    for r in &c.recipients {
        assert_eq!(r.email, r.email.to_lowercase());
    }
});
