// The provider fixtures (`tests/fixtures/providers`) with their `{{NAME}}` placeholders
// replaced. Shared by the integration tests (`common`) and the providers' unit tests
// (`providers::testing`, through `include!`), which cannot share a crate.

/// The fixture `name` as text, every `{{K}}` of `vars` replaced; panics on a placeholder
/// left over.
pub fn fixture_text(name: &str, vars: &[(&str, &str)]) -> String {
    let path = format!(
        "{}/tests/fixtures/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "{name}: a placeholder is left");
    text
}
