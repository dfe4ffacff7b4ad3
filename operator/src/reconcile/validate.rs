//! Phase 2, "validate": whether the workers could run this config. The spec itself is
//! judged by `bounceops_api::validate`, the judgement the worker makes at start-up (so the
//! operator never creates a Deployment that crash-loops on its config); what only a
//! cluster adds is checked here. A problem becomes the Degraded condition with reason
//! InvalidSpec, and no child is changed.

use bounceops_api::{BounceConfig, Problem};
use kube::ResourceExt;

/// The longest BounceConfig name whose children's names (`<name>-webhook`, a Service
/// name, so a DNS label of at most 63 characters) stay valid.
pub const MAX_NAME_LEN: usize = 63 - "-mailbox".len();

/// Every problem found, each naming the field; empty when the config is usable.
pub fn problems(config: &BounceConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    if config.name_any().len() > MAX_NAME_LEN {
        out.push(Problem::new(
            "metadata.name",
            format!(
                "at most {MAX_NAME_LEN} characters, so the children's names stay valid DNS labels"
            ),
        ));
    }
    // Optional in the spec, for a worker run by hand with DATABASE_URL; the pods the
    // operator makes get no such variable.
    if config.spec.database.url_secret_ref.is_none() {
        out.push(Problem::new(
            "spec.database.urlSecretRef",
            "required in a cluster (DATABASE_URL is for local runs)",
        ));
    }
    out.extend(bounceops_api::validate(&config.spec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> BounceConfig {
        BounceConfig::new("news", serde_yaml::from_str(yaml).unwrap())
    }

    const OK: &str = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: c}}\n";

    fn fields(c: &BounceConfig) -> Vec<String> {
        problems(c).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_complete_spec_has_no_problems() {
        assert_eq!(problems(&config(OK)), []);
    }

    #[test]
    fn a_cluster_needs_the_database_reference() {
        let c = config("api: {credentialsSecretRef: {name: a, key: c}}\ndatabase: {}");
        assert_eq!(fields(&c), ["spec.database.urlSecretRef"]);
    }

    /// The spec's own rules are bounceops_api's (its table test covers them); here: they
    /// reach the operator's verdict, after the cluster's own.
    #[test]
    fn the_specs_problems_follow_the_clusters() {
        let mut c = config(&format!(
            "{OK}rules: {{window: soon}}\nmailboxes: [{{name: a, protocol: pop3, host: h, port: 995, scanInterval: 1ms, usernameSecretRef: {{name: m, key: u}}, passwordSecretRef: {{name: m, key: p}}}}]"
        ));
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN + 1));
        assert_eq!(
            fields(&c),
            [
                "metadata.name",
                "spec.rules.window",
                "spec.mailboxes[0].scanInterval"
            ]
        );
    }

    #[test]
    fn long_names_are_refused() {
        let mut c = config(OK);
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN + 1));
        assert_eq!(fields(&c), ["metadata.name"]);
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN));
        assert_eq!(problems(&c), []);
    }
}
