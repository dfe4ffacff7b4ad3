//! Phase 2, "validate": whether the workers could run this config. The spec itself is
//! judged by `bounceops_api::validate`, the judgement the worker makes at start-up (so the
//! operator never creates a Deployment that crash-loops on its config); what only a
//! cluster adds is checked here. A problem becomes the Degraded condition with reason
//! InvalidSpec, and no child is changed.

use bounceops_api::{BounceConfig, Problem};
use kube::ResourceExt;

use super::desired::SMTP_METRICS_SUFFIX;

/// The longest BounceConfig name whose children's names (`<name>-mailbox`, a Service
/// name, so a DNS label of at most 63 characters) stay valid.
pub const MAX_NAME_LEN: usize = 63 - "-mailbox".len();

/// The same with `spec.smtp`, whose metrics Service has the longest name of all
/// (`<name>-smtp-metrics`). Only such configs are held to it, so that no config that
/// worked before the bounce MX existed is refused now.
pub const MAX_NAME_LEN_SMTP: usize = 63 - 1 - SMTP_METRICS_SUFFIX.len();

/// The longest name this config may have.
pub fn max_name_len(config: &BounceConfig) -> usize {
    if config.spec.smtp.is_some() {
        MAX_NAME_LEN_SMTP
    } else {
        MAX_NAME_LEN
    }
}

/// Every problem found, each naming the field; empty when the config is usable.
pub fn problems(config: &BounceConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    let max = max_name_len(config);
    if config.name_any().len() > max {
        out.push(Problem::new(
            "metadata.name",
            if config.spec.smtp.is_some() {
                format!(
                    "at most {max} characters with spec.smtp, so the children's names (the longest: <name>-{SMTP_METRICS_SUFFIX}) stay valid DNS labels"
                )
            } else {
                format!("at most {max} characters, so the children's names stay valid DNS labels")
            },
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
    use crate::reconcile::desired::ChildKind;

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
    fn the_bounce_mx_bounds_the_name_by_its_longest_child() {
        let smtp =
            "smtp: {domains: [bounces.example.com], verpKeySecretRef: {name: verp, key: key}}\n";
        let mut c = config(&format!("{OK}{smtp}"));
        assert_eq!(MAX_NAME_LEN_SMTP, 50);
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN_SMTP));
        assert_eq!(problems(&c), []);
        let metrics_service = ChildKind::SmtpMetricsService.name(&c.name_any());
        assert_eq!(metrics_service.len(), 63, "{metrics_service}");
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN_SMTP + 1));
        let p = problems(&c);
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("with spec.smtp"), "{}", p[0].message);
        // Without the bounce MX the old bound stands.
        c.spec.smtp = None;
        assert_eq!(problems(&c), []);
        // No child of any kind is named longer than the bound allows.
        let mut c = config(&format!("{OK}{smtp}"));
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN_SMTP));
        for kind in ChildKind::ALL {
            assert!(kind.name(&c.name_any()).len() <= 63, "{kind:?}");
        }
        c.spec.smtp = None;
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN));
        for kind in ChildKind::ALL {
            if !matches!(kind, ChildKind::SmtpMetricsService) {
                assert!(kind.name(&c.name_any()).len() <= 63, "{kind:?}");
            }
        }
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
