//! Pods' memory as the kubelet measures it from their cgroups: `pod_memory_working_set_bytes`
//! of its resource metrics (`/metrics/resource`, read through the API server's node proxy),
//! the number `kubectl top` and the OOM killer's accounting go by.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// `namespace/pod` → working-set bytes, for every pod in `namespaces` on every node.
pub async fn working_sets(client: &Client, namespaces: &[&str]) -> BTreeMap<String, u64> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let mut out = BTreeMap::new();
    for node in nodes.items {
        let req = http::Request::get(format!(
            "/api/v1/nodes/{}/proxy/metrics/resource",
            node.name_any()
        ))
        .body(Vec::new())
        .unwrap();
        let text = client
            .request_text(req)
            .await
            .expect("the kubelet's resource metrics");
        out.extend(parse(&text, namespaces));
    }
    out
}

/// The `pod_memory_working_set_bytes{namespace="..",pod=".."} <value> <ts>` lines of the
/// Prometheus text format (a handful of lines: not worth a parser crate).
fn parse(text: &str, namespaces: &[&str]) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("pod_memory_working_set_bytes{"))
        .filter_map(|rest| {
            let (labels, values) = rest.split_once('}')?;
            let label = |name: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.trim() == name).then(|| v.trim_matches('"').to_owned())
                })
            };
            let (ns, pod) = (label("namespace")?, label("pod")?);
            let value: f64 = values.split_whitespace().next()?.parse().ok()?;
            namespaces
                .contains(&ns.as_str())
                .then(|| (format!("{ns}/{pod}"), value as u64))
        })
        .collect()
}

#[test]
fn parses_the_kubelets_lines() {
    let text = "# HELP pod_memory_working_set_bytes x\n\
                pod_memory_working_set_bytes{namespace=\"mail\",pod=\"w-1\"} 1.2582912e+07 1700000000000\n\
                pod_memory_working_set_bytes{namespace=\"other\",pod=\"x\"} 5 1700000000000\n\
                container_memory_working_set_bytes{container=\"worker\",namespace=\"mail\",pod=\"w-1\"} 9 1\n";
    assert_eq!(
        parse(text, &["mail"]),
        [("mail/w-1".to_owned(), 12_582_912)]
    );
}
