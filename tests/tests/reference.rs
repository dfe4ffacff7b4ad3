//! docs/reference.md is generated from crds/bounceconfig.yaml and must be up to date.

use bounceops_tests::read;
use bounceops_tests::reference::{CRD_PATH, REFERENCE_PATH, REGENERATE, reference_markdown};

#[test]
fn reference_is_generated_from_the_current_crd() {
    let page = reference_markdown(&read(CRD_PATH)).expect("CRD renders");
    let committed = read(REFERENCE_PATH);
    assert!(
        committed == page,
        "{REFERENCE_PATH} is stale (the CRD changed): run `{REGENERATE}`"
    );
}

#[test]
fn reference_documents_the_contract_fields() {
    let page = read(REFERENCE_PATH);
    for field in [
        "### `spec.database`",
        "### `spec.rules`",
        "### `spec.providers`",
        "### `spec.mailboxes[]`",
        "### `spec.webhook`",
        "| `urlSecretRef` | SecretRef |",
        "| `scanInterval` |",
    ] {
        assert!(page.contains(field), "{REFERENCE_PATH} lacks {field}");
    }
}
