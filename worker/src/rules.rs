//! The threshold rules as a pure decision: given how many bounces of a type the subscriber
//! has (this one included) and whether it is blocklisted, what to store and what to do.
//! The store runs this under the subscriber's lock; keeping it pure lets every case of
//! listmonk's semantics (DESIGN §3) be tested without a database.

use std::collections::HashMap;
use std::time::Duration;

use bounce_classify::Reason;
use bounceops_api::{Action, ReasonType, Rule};

use crate::event::BounceType;

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub soft: Rule,
    pub hard: Rule,
    pub complaint: Rule,
    /// Count only bounces newer than this; `None` counts all, as listmonk does.
    pub window: Option<Duration>,
    /// Store bounces past the threshold too (listmonk stops storing them).
    pub record_after_threshold: bool,
    /// `spec.rules.reasons`: what a bounce with one of these reasons counts as. Empty, as
    /// listmonk has no such rules.
    pub reasons: HashMap<Reason, ReasonType>,
}

impl Default for Rules {
    fn default() -> Self {
        let spec = bounceops_api::RulesSpec::default();
        Rules {
            soft: spec.soft,
            hard: spec.hard,
            complaint: spec.complaint,
            window: None,
            record_after_threshold: false,
            reasons: HashMap::new(),
        }
    }
}

impl Rules {
    pub fn for_type(&self, t: BounceType) -> Rule {
        match t {
            BounceType::Soft => self.soft,
            BounceType::Hard => self.hard,
            BounceType::Complaint => self.complaint,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Insert the bounce row.
    pub insert: bool,
    /// The action to carry out now, if any (never `Action::None`).
    pub action: Option<Action>,
}

/// `n` is the subscriber's count of bounces of this type, this one included.
pub fn decide(n: i64, rule: Rule, blocklisted: bool, record_after_threshold: bool) -> Decision {
    let reached = n >= i64::from(rule.count);
    let insert = record_after_threshold || !(blocklisted || n > i64::from(rule.count));
    let action = match rule.action {
        Action::None => None,
        // listmonk skips these for a blocklisted subscriber: blocklisting again would be a
        // no-op, and a blocklisted subscriber's list rows are left as they are.
        Action::Blocklist | Action::Unsubscribe if blocklisted => None,
        Action::Blocklist | Action::Unsubscribe | Action::Delete if reached => Some(rule.action),
        _ => None,
    };
    Decision { insert, action }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIONS: [Action; 4] = [
        Action::None,
        Action::Unsubscribe,
        Action::Blocklist,
        Action::Delete,
    ];

    #[test]
    fn listmonk_semantics_for_every_action_and_threshold() {
        for action in ACTIONS {
            for count in 1..=4u32 {
                let rule = Rule { count, action };
                for n in 1..=6i64 {
                    let d = decide(n, rule, false, false);
                    assert_eq!(d.insert, n <= i64::from(count), "{action:?} {count} {n}");
                    let want = (n >= i64::from(count) && action != Action::None).then_some(action);
                    assert_eq!(d.action, want, "{action:?} count={count} n={n}");
                }
            }
        }
    }

    #[test]
    fn blocklisted_subscriber_is_never_stored_nor_re_actioned() {
        for action in [Action::None, Action::Unsubscribe, Action::Blocklist] {
            let d = decide(1, Rule { count: 1, action }, true, false);
            assert_eq!(
                d,
                Decision {
                    insert: false,
                    action: None
                },
                "{action:?}"
            );
        }
        // listmonk's delete has no blocklist condition.
        let d = decide(
            1,
            Rule {
                count: 1,
                action: Action::Delete,
            },
            true,
            false,
        );
        assert_eq!(d.action, Some(Action::Delete));
        assert!(!d.insert);
    }

    #[test]
    fn record_after_threshold_keeps_storing() {
        let rule = Rule {
            count: 2,
            action: Action::Blocklist,
        };
        assert!(decide(5, rule, false, true).insert);
        assert!(decide(5, rule, true, true).insert);
        assert!(!decide(5, rule, false, false).insert);
        assert_eq!(decide(5, rule, false, true).action, Some(Action::Blocklist));
    }

    #[test]
    fn defaults_are_listmonks() {
        let r = Rules::default();
        assert_eq!(
            r.for_type(BounceType::Soft),
            Rule {
                count: 2,
                action: Action::None
            }
        );
        assert_eq!(
            r.for_type(BounceType::Hard),
            Rule {
                count: 1,
                action: Action::Blocklist
            }
        );
        assert_eq!(
            r.for_type(BounceType::Complaint),
            Rule {
                count: 1,
                action: Action::Blocklist
            }
        );
    }
}
