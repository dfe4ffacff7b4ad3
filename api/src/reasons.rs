//! Rules by reason (`spec.rules.reasons`): the classifier's reason names, and what a
//! bounce with one of them counts as.
//!
//! The names are `bounce_classify::Reason`'s; a test keeps this list equal to
//! `Reason::ALL`. The list is repeated here rather than taken from the classifier so that
//! the operator, which needs the names only for the CRD, does not build the classifier
//! (and Tilt does not rebuild the operator on every change to it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every reason the classifier gives, in the order of its vocabulary (docs/reasons.md).
pub const REASONS: &[&str] = &[
    "userunknown",
    "mailboxfull",
    "hostunknown",
    "filtered",
    "blocked",
    "spamdetected",
    "expired",
    "suspend",
    "rejected",
    "policyviolation",
    "authfailure",
    "requireptr",
    "norelaying",
    "toomanyconn",
    "speeding",
    "mesgtoobig",
    "exceedlimit",
    "contenterror",
    "securityerror",
    "virusdetected",
    "badreputation",
    "systemerror",
    "networkerror",
    "notaccept",
    "hasmoved",
    "syntaxerror",
    "mailererror",
    "notcompliantrfc",
    "onhold",
    "undefined",
    "feedback",
    "vacation",
    "delivered",
];

/// The words of the CEL rule on `spec.rules.reasons` and of `validate`'s problem.
pub const UNKNOWN_REASON: &str = "keys must be reasons listed in docs/reasons.md";

/// The CEL rule that refuses any key that is not a reason.
pub fn cel_rule() -> String {
    let names: Vec<String> = REASONS.iter().map(|r| format!("'{r}'")).collect();
    format!("self.all(k, k in [{}])", names.join(", "))
}

/// What the bounces of one reason count as.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub struct ReasonRule {
    /// `hard`, `soft` or `complaint`: counted as that type (whatever type the bounce was
    /// reported with), under that type's rule. `ignore`: never counted, never acted upon and
    /// not stored in listmonk's `bounces`; kept in `bounceops.ignored` with its reason.
    #[serde(rename = "type")]
    pub treat_as: ReasonType,
}

/// A bounce type, or `ignore`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasonType {
    Hard,
    Soft,
    Complaint,
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_classifiers() {
        let classifier: Vec<&str> = bounce_classify::Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            REASONS, classifier,
            "api/src/reasons.rs must list bounce_classify::Reason::ALL (then regenerate the CRD)"
        );
    }

    #[test]
    fn the_cel_rule_names_every_reason_and_nothing_else() {
        let rule = cel_rule();
        assert!(rule.starts_with("self.all(k, k in ['userunknown', 'mailboxfull', "));
        assert_eq!(rule.matches('\'').count(), 2 * REASONS.len());
    }
}
