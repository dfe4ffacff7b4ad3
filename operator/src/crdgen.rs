//! Prints the BounceConfig CRD generated from the Rust types. CI diffs it against the
//! committed `crds/bounceconfig.yaml`:
//! `cargo run -q -p bounce-operator --bin crdgen > crds/bounceconfig.yaml`

fn main() {
    print!("{}", bounce_operator::crd::crd_yaml());
}
