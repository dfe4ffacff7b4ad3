//! What the providers' tests share.

use serde_json::Value;

/// A reply that names no cause (`onhold` to the classifier), so that a provider's
/// table decides: the rows of each table are tested with it.
pub const GENERIC_REPLY: &str = "550 5.0.0 Message rejected";

// The integration tests' own copy would be a twin; `#[path]` cannot reach it from here
// (the module's directory does not exist), `include!` can.
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/common/fixture_text.rs"
));

/// A fixture of the webhook tests (`tests/fixtures/providers`), placeholders replaced.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> Value {
    let text = fixture_text(name, vars);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}
