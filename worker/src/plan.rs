//! What a batch of events does to the subscribers it touches, decided in memory.
//!
//! The store loads, under the subscribers' locks, each subscriber's status and bounce
//! counts; this module then plays the batch's events in arrival order exactly as if each
//! were recorded alone (listmonk's semantics, event after event) and returns the writes to
//! make. The store carries them out with one statement per kind of write, so a batch of a
//! hundred events costs about as many statements as a batch of one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use bounceops_api::{Action, ReasonType};
use chrono::{DateTime, Utc};

use crate::event::{BounceEvent, BounceType};
use crate::rules::{Rules, decide};

/// A subscriber as the store found it, under its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberState {
    pub blocklisted: bool,
    /// Bounces per type already stored (within the window, if any).
    pub soft: i64,
    pub hard: i64,
    pub complaint: i64,
}

impl SubscriberState {
    fn count(&mut self, t: BounceType) -> &mut i64 {
        match t {
            BounceType::Soft => &mut self.soft,
            BounceType::Hard => &mut self.hard,
            BounceType::Complaint => &mut self.complaint,
        }
    }
}

/// What happens to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Insert its bounce; `action` (if any) is applied to the subscriber after the inserts.
    Insert {
        subscriber_id: i32,
        action: Option<Action>,
    },
    /// Not stored: the subscriber is blocklisted.
    Blocklisted,
    /// Not stored: past the threshold; `action` may still apply.
    OverThreshold {
        subscriber_id: i32,
        action: Option<Action>,
    },
    /// No such subscriber (or deleted earlier in this batch): keep it unmatched.
    Unmatched,
    /// Its reason is ignored (`spec.rules.reasons`): kept apart, whoever the subscriber is.
    Ignored,
}

/// What the rules by reason make of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Counted, and stored, as this type: its own, or its reason's.
    Count(BounceType),
    /// Neither counted nor acted upon.
    Ignore,
}

/// An event without a reason, or with one the rules do not list, counts as its own type.
pub fn treatment(event: &BounceEvent, rules: &Rules) -> Treatment {
    match event.reason.and_then(|r| rules.reasons.get(&r)) {
        None => Treatment::Count(event.bounce_type),
        Some(ReasonType::Hard) => Treatment::Count(BounceType::Hard),
        Some(ReasonType::Soft) => Treatment::Count(BounceType::Soft),
        Some(ReasonType::Complaint) => Treatment::Count(BounceType::Complaint),
        Some(ReasonType::Ignore) => Treatment::Ignore,
    }
}

/// Gives each event the type it counts as, so that what is stored, and what metrics call
/// it, is the type its rule was applied as. Ignored events keep theirs.
pub fn retype(events: &mut [BounceEvent], rules: &Rules) {
    for event in events {
        if let Treatment::Count(t) = treatment(event, rules) {
            event.bounce_type = t;
        }
    }
}

/// [`retype`] on a copy, made only when some type changes (never without rules by
/// reason, nor for a batch the ingest queue already retyped).
pub fn retyped<'a>(events: &'a [BounceEvent], rules: &Rules) -> Cow<'a, [BounceEvent]> {
    let changes =
        |e: &BounceEvent| matches!(treatment(e, rules), Treatment::Count(t) if t != e.bounce_type);
    if !events.iter().any(changes) {
        return Cow::Borrowed(events);
    }
    let mut owned = events.to_vec();
    retype(&mut owned, rules);
    Cow::Owned(owned)
}

/// Plays `events` (those listed in `order`, in that order) against the loaded `state`.
/// `subscriber_of` maps an event index to the subscriber the lookup found; a subscriber
/// missing from `state` was deleted between the lookup and the lock. `now` is the
/// transaction's clock, so the window matches what a count in SQL would see.
pub fn plan(
    events: &[BounceEvent],
    order: &[usize],
    subscriber_of: &HashMap<usize, i32>,
    mut state: HashMap<i32, SubscriberState>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> HashMap<usize, Step> {
    let mut steps = HashMap::with_capacity(order.len());
    // Actions already carried out in this batch: doing them again would change nothing.
    let mut unsubscribed: std::collections::HashSet<i32> = Default::default();
    for &i in order {
        let event = &events[i];
        let Treatment::Count(bounce_type) = treatment(event, rules) else {
            steps.insert(i, Step::Ignored);
            continue;
        };
        let Some(&id) = subscriber_of.get(&i) else {
            steps.insert(i, Step::Unmatched);
            continue;
        };
        let Some(sub) = state.get_mut(&id) else {
            steps.insert(i, Step::Unmatched);
            continue;
        };
        let rule = rules.for_type(bounce_type);
        let n = *sub.count(bounce_type) + 1;
        let decision = decide(n, rule, sub.blocklisted, rules.record_after_threshold);
        let mut action = decision.action;
        if action == Some(Action::Unsubscribe) && !unsubscribed.insert(id) {
            action = None;
        }
        if decision.insert && counts_in_window(event.created_at.unwrap_or(now), now, rules.window) {
            *sub.count(bounce_type) += 1;
        }
        let step = match (decision.insert, sub.blocklisted) {
            (true, _) => Step::Insert {
                subscriber_id: id,
                action,
            },
            (false, true) if action.is_none() => Step::Blocklisted,
            (false, _) => Step::OverThreshold {
                subscriber_id: id,
                action,
            },
        };
        match action {
            Some(Action::Blocklist) => sub.blocklisted = true,
            Some(Action::Delete) => {
                state.remove(&id);
            }
            _ => {}
        }
        steps.insert(i, step);
    }
    steps
}

fn counts_in_window(at: DateTime<Utc>, now: DateTime<Utc>, window: Option<Duration>) -> bool {
    match window.and_then(|w| chrono::Duration::from_std(w).ok()) {
        None => true,
        Some(w) => at > now - w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bounce_classify::Reason;
    use bounceops_api::Rule;

    fn ev(t: BounceType) -> BounceEvent {
        BounceEvent {
            email: Some("x@example.com".into()),
            subscriber_uuid: None,
            campaign_uuid: None,
            bounce_type: t,
            source: "t".into(),
            meta: serde_json::json!({}),
            created_at: None,
            event_id: crate::event::received_id(),
            reason: None,
            evidence: None,
            request_digest: None,
        }
    }

    /// Subscriber 7's steps: `run` gives every event to subscriber 7.
    fn insert(action: Option<Action>) -> Step {
        Step::Insert {
            subscriber_id: 7,
            action,
        }
    }

    fn over(action: Option<Action>) -> Step {
        Step::OverThreshold {
            subscriber_id: 7,
            action,
        }
    }

    fn run(events: &[BounceEvent], rules: &Rules, state: SubscriberState) -> Vec<Step> {
        let order: Vec<usize> = (0..events.len()).collect();
        let subs: HashMap<usize, i32> = order.iter().map(|&i| (i, 7)).collect();
        let steps = plan(
            events,
            &order,
            &subs,
            HashMap::from([(7, state)]),
            rules,
            Utc::now(),
        );
        order.iter().map(|i| steps[i]).collect()
    }

    #[test]
    fn counts_grow_within_the_batch() {
        let rules = Rules::default(); // soft {2, none}
        let steps = run(
            &vec![ev(BounceType::Soft); 3],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(steps, vec![insert(None), insert(None), over(None)]);
    }

    #[test]
    fn blocklisting_in_the_batch_stops_later_inserts() {
        let rules = Rules::default(); // hard {1, blocklist}
        let steps = run(
            &[
                ev(BounceType::Hard),
                ev(BounceType::Soft),
                ev(BounceType::Hard),
            ],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(
            steps,
            vec![
                insert(Some(Action::Blocklist)),
                Step::Blocklisted,
                Step::Blocklisted
            ]
        );
    }

    #[test]
    fn deletion_in_the_batch_makes_later_events_unmatched() {
        let rules = Rules {
            hard: Rule {
                count: 1,
                action: Action::Delete,
            },
            ..Rules::default()
        };
        let steps = run(
            &[ev(BounceType::Hard), ev(BounceType::Soft)],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(steps, vec![insert(Some(Action::Delete)), Step::Unmatched]);
    }

    #[test]
    fn unsubscribe_is_applied_once_per_batch() {
        let rules = Rules {
            soft: Rule {
                count: 1,
                action: Action::Unsubscribe,
            },
            ..Rules::default()
        };
        let steps = run(
            &vec![ev(BounceType::Soft); 2],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(steps, vec![insert(Some(Action::Unsubscribe)), over(None)]);
    }

    #[test]
    fn stored_counts_are_taken_into_account() {
        let rules = Rules::default();
        let state = SubscriberState {
            soft: 1,
            ..Default::default()
        };
        let steps = run(&[ev(BounceType::Soft), ev(BounceType::Soft)], &rules, state);
        assert_eq!(steps[0], insert(None));
        assert_eq!(steps[1], over(None));
    }

    #[test]
    fn old_bounces_in_the_batch_do_not_count_inside_a_window() {
        let rules = Rules {
            soft: Rule {
                count: 2,
                action: Action::Blocklist,
            },
            window: Some(Duration::from_secs(3600)),
            ..Rules::default()
        };
        let mut old = ev(BounceType::Soft);
        old.created_at = Some(Utc::now() - chrono::Duration::hours(5));
        let steps = run(
            &[old, ev(BounceType::Soft), ev(BounceType::Soft)],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(steps[0], insert(None));
        assert_eq!(steps[1], insert(None));
        assert_eq!(steps[2], insert(Some(Action::Blocklist)));
    }

    fn with_reason(t: BounceType, reason: Reason) -> BounceEvent {
        BounceEvent {
            reason: Some(reason),
            ..ev(t)
        }
    }

    fn by_reason(pairs: &[(Reason, ReasonType)]) -> Rules {
        Rules {
            reasons: pairs.iter().copied().collect(),
            ..Rules::default()
        }
    }

    #[test]
    fn a_reason_rule_changes_the_type_counted() {
        // Default rules: hard {1, blocklist}, soft {2, none}.
        let rules = by_reason(&[(Reason::MailboxFull, ReasonType::Soft)]);
        let full = with_reason(BounceType::Hard, Reason::MailboxFull);
        let steps = run(&vec![full; 3], &rules, SubscriberState::default());
        assert_eq!(
            steps,
            vec![insert(None), insert(None), over(None)],
            "counted as soft: no blocklist, and stored up to soft's count"
        );
        // And against the stored count of its new type, not of the reported one.
        let state = SubscriberState {
            complaint: 1,
            ..Default::default()
        };
        let rules = by_reason(&[(Reason::MailboxFull, ReasonType::Complaint)]);
        let steps = run(
            &[with_reason(BounceType::Soft, Reason::MailboxFull)],
            &rules,
            state,
        );
        assert_eq!(steps, vec![over(Some(Action::Blocklist))]);
    }

    #[test]
    fn an_ignored_reason_is_not_counted_nor_acted_upon() {
        let rules = by_reason(&[(Reason::Blocked, ReasonType::Ignore)]);
        let blocked = with_reason(BounceType::Hard, Reason::Blocked);
        let steps = run(
            &[
                blocked.clone(),
                blocked,
                ev(BounceType::Soft),
                ev(BounceType::Soft),
            ],
            &rules,
            SubscriberState::default(),
        );
        assert_eq!(
            steps,
            vec![
                Step::Ignored,
                Step::Ignored,
                // The soft count starts from zero: the ignored bounces added nothing.
                insert(None),
                insert(None)
            ]
        );
        // Whoever the subscriber is, or is not.
        let steps = plan(
            &[with_reason(BounceType::Hard, Reason::Blocked)],
            &[0],
            &HashMap::new(),
            HashMap::new(),
            &rules,
            Utc::now(),
        );
        assert_eq!(steps[&0], Step::Ignored);
    }

    #[test]
    fn without_a_rule_for_its_reason_an_event_counts_as_its_own_type() {
        let listmonk = Rules::default();
        let rules = by_reason(&[(Reason::Blocked, ReasonType::Ignore)]);
        let events = [
            with_reason(BounceType::Hard, Reason::UserUnknown),
            ev(BounceType::Hard),
        ];
        let want = run(&events, &listmonk, SubscriberState::default());
        assert_eq!(want[0], insert(Some(Action::Blocklist)));
        assert_eq!(run(&events, &rules, SubscriberState::default()), want);
        assert_eq!(
            treatment(&events[0], &rules),
            Treatment::Count(BounceType::Hard)
        );
        assert!(matches!(retyped(&events, &rules), Cow::Borrowed(_)));
    }

    #[test]
    fn retyping_gives_the_counted_type_and_leaves_ignored_ones() {
        let rules = by_reason(&[
            (Reason::Blocked, ReasonType::Ignore),
            (Reason::MailboxFull, ReasonType::Soft),
        ]);
        let events = [
            with_reason(BounceType::Hard, Reason::MailboxFull),
            with_reason(BounceType::Hard, Reason::Blocked),
            ev(BounceType::Complaint),
        ];
        let types: Vec<BounceType> = retyped(&events, &rules)
            .iter()
            .map(|e| e.bounce_type)
            .collect();
        assert_eq!(
            types,
            [BounceType::Soft, BounceType::Hard, BounceType::Complaint]
        );
    }

    #[test]
    fn unknown_and_vanished_subscribers_are_unmatched() {
        let events = [ev(BounceType::Soft), ev(BounceType::Soft)];
        let subs = HashMap::from([(1usize, 9)]); // event 0: lookup found nobody
        let steps = plan(
            &events,
            &[0, 1],
            &subs,
            HashMap::new(),
            &Rules::default(),
            Utc::now(),
        );
        assert_eq!(steps[&0], Step::Unmatched);
        assert_eq!(
            steps[&1],
            Step::Unmatched,
            "found by the lookup, gone by the lock"
        );
    }
}
