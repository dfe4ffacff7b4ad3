//! Recording with listmonk's rules, against a real Postgres (DESIGN §3).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bounce_classify::Reason;
use bounce_worker::event::{BounceEvent, BounceType, Outcome};
use bounce_worker::ingest::Ingest;
use bounce_worker::metrics::Metrics;
use bounce_worker::rules::Rules;
use bounce_worker::store::record::{Chain, record, record_chained};
use bounceops_api::{Action, ReasonType, Rule};
use common::TestDb;
use sqlx::Connection as _;
use uuid::Uuid;

fn event(email: &str, t: BounceType) -> BounceEvent {
    BounceEvent {
        email: Some(email.to_owned()),
        subscriber_uuid: None,
        campaign_uuid: None,
        bounce_type: t,
        source: "test".into(),
        meta: serde_json::json!({}),
        created_at: None,
        event_id: bounce_worker::event::received_id(),
        reason: None,
        evidence: None,
        request_digest: None,
    }
}

fn rules_with(t: BounceType, rule: Rule) -> Rules {
    let mut rules = Rules::default();
    match t {
        BounceType::Soft => rules.soft = rule,
        BounceType::Hard => rules.hard = rule,
        BounceType::Complaint => rules.complaint = rule,
    }
    rules
}

async fn one(db: &TestDb, rules: &Rules, e: BounceEvent) -> Outcome {
    record(&db.store(), rules, &[e]).await.unwrap().remove(0)
}

/// Every type x action x threshold, bounce after bounce, checked against a model of
/// listmonk's semantics written out independently of the worker's `decide`.
#[tokio::test]
async fn every_type_action_and_threshold() {
    let db = TestDb::new().await;
    for t in [BounceType::Soft, BounceType::Hard, BounceType::Complaint] {
        for action in [
            Action::None,
            Action::Unsubscribe,
            Action::Blocklist,
            Action::Delete,
        ] {
            for count in 1..=3u32 {
                let rules = rules_with(t, Rule { count, action });
                let email = format!("{}-{}-{count}@example.com", t.as_str(), action.as_str());
                let (id, _) = db.subscriber(&email).await;
                for n in 1..=count + 2 {
                    let outcome = one(&db, &rules, event(&email, t)).await;
                    let ctx = format!("{t:?} {action:?} count={count} bounce #{n}: {outcome:?}");
                    let reached = n >= count;
                    match action {
                        Action::None | Action::Unsubscribe => {
                            assert_eq!(db.bounce_count(id).await, i64::from(n.min(count)), "{ctx}");
                            assert_eq!(db.status(id).await.as_deref(), Some("enabled"), "{ctx}");
                            let lists = if action == Action::Unsubscribe && reached {
                                "unsubscribed"
                            } else {
                                "confirmed"
                            };
                            assert_eq!(db.list_statuses(id).await, vec![lists], "{ctx}");
                        }
                        Action::Blocklist => {
                            assert_eq!(db.bounce_count(id).await, i64::from(n.min(count)), "{ctx}");
                            let status = if reached { "blocklisted" } else { "enabled" };
                            assert_eq!(db.status(id).await.as_deref(), Some(status), "{ctx}");
                            // listmonk leaves list memberships alone when blocklisting.
                            assert_eq!(db.list_statuses(id).await, vec!["confirmed"], "{ctx}");
                            if n > count {
                                assert_eq!(outcome, Outcome::Blocklisted, "{ctx}");
                            }
                        }
                        Action::Delete => {
                            if reached {
                                assert_eq!(db.status(id).await, None, "{ctx}");
                                // Its bounces went with it (ON DELETE CASCADE).
                                assert_eq!(db.bounce_count(id).await, 0, "{ctx}");
                                if n > count {
                                    assert_eq!(outcome, Outcome::Unmatched, "{ctx}");
                                }
                            } else {
                                assert_eq!(db.bounce_count(id).await, i64::from(n), "{ctx}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every action in one batch, one subscriber unsubscribed and then deleted by a later
/// event of the same batch: the actions that share the bounce insert's statement and the
/// delete that follows it each report what they changed, and each bounce id is its row's.
#[tokio::test]
async fn every_action_in_one_batch() {
    let db = TestDb::new().await;
    let rule = |action| Rule { count: 1, action };
    let rules = Rules {
        soft: rule(Action::Unsubscribe),
        hard: rule(Action::Blocklist),
        complaint: rule(Action::Delete),
        ..Rules::default()
    };
    let (gone, _) = db.subscriber("gone@example.com").await;
    let (left, _) = db.subscriber("left@example.com").await;
    let (blocked, _) = db.subscriber("blocked@example.com").await;
    let batch = [
        event("gone@example.com", BounceType::Soft),
        event("left@example.com", BounceType::Soft),
        event("gone@example.com", BounceType::Complaint),
        event("blocked@example.com", BounceType::Hard),
    ];
    let outcomes = record(&db.store(), &rules, &batch).await.unwrap();
    let action = |o: &Outcome| match o {
        Outcome::Recorded { action, .. } => *action,
        other => panic!("not recorded: {other:?}"),
    };
    assert_eq!(
        outcomes.iter().map(action).collect::<Vec<_>>(),
        [
            Some(Action::Unsubscribe),
            Some(Action::Unsubscribe),
            Some(Action::Delete),
            Some(Action::Blocklist)
        ],
        "{outcomes:?}"
    );
    assert_eq!(db.status(gone).await, None, "deleted");
    assert_eq!(db.bounce_count(gone).await, 0, "its bounces went with it");
    assert_eq!(db.list_statuses(left).await, vec!["unsubscribed"]);
    assert_eq!(db.status(left).await.as_deref(), Some("enabled"));
    assert_eq!(db.status(blocked).await.as_deref(), Some("blocklisted"));
    assert_eq!(db.list_statuses(blocked).await, vec!["confirmed"]);
    for (at, subscriber) in [(1, left), (3, blocked)] {
        let Outcome::Recorded { bounce_id, .. } = outcomes[at] else {
            unreachable!()
        };
        let row: i32 = sqlx::query_scalar("SELECT subscriber_id FROM bounces WHERE id = $1")
            .bind(bounce_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(row, subscriber, "bounce {bounce_id}");
    }
}

#[tokio::test]
async fn over_threshold_with_unsubscribe_is_not_stored() {
    let db = TestDb::new().await;
    let rules = rules_with(
        BounceType::Soft,
        Rule {
            count: 2,
            action: Action::Unsubscribe,
        },
    );
    db.subscriber("s@example.com").await;
    let o1 = one(&db, &rules, event("s@example.com", BounceType::Soft)).await;
    let o2 = one(&db, &rules, event("s@example.com", BounceType::Soft)).await;
    let o3 = one(&db, &rules, event("s@example.com", BounceType::Soft)).await;
    assert!(
        matches!(o1, Outcome::Recorded { action: None, .. }),
        "{o1:?}"
    );
    assert!(
        matches!(
            o2,
            Outcome::Recorded {
                action: Some(Action::Unsubscribe),
                ..
            }
        ),
        "{o2:?}"
    );
    // Already unsubscribed: nothing changes, so no action is reported.
    assert_eq!(o3, Outcome::OverThreshold { action: None });
}

#[tokio::test]
async fn types_are_counted_separately() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("mixed@example.com").await;
    let rules = Rules::default(); // soft {2, none}, hard {1, blocklist}
    one(&db, &rules, event("mixed@example.com", BounceType::Soft)).await;
    one(&db, &rules, event("mixed@example.com", BounceType::Soft)).await;
    assert_eq!(db.status(id).await.as_deref(), Some("enabled"));
    one(&db, &rules, event("mixed@example.com", BounceType::Hard)).await;
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
    assert_eq!(db.bounce_count(id).await, 3);
}

#[tokio::test]
async fn window_counts_only_recent_bounces() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("w@example.com").await;
    for days in [40, 35] {
        sqlx::query(
            "INSERT INTO bounces (subscriber_id, type, source, created_at)
             VALUES ($1, 'soft', 'old', NOW() - make_interval(days => $2))",
        )
        .bind(id)
        .bind(days)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let mut rules = rules_with(
        BounceType::Soft,
        Rule {
            count: 2,
            action: Action::Blocklist,
        },
    );
    // Without a window the two old bounces count: the third is over the threshold.
    let no_window = one(&db, &rules, event("w@example.com", BounceType::Soft)).await;
    assert!(
        matches!(
            no_window,
            Outcome::OverThreshold {
                action: Some(Action::Blocklist)
            }
        ),
        "{no_window:?}"
    );
    sqlx::query("UPDATE subscribers SET status = 'enabled' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();

    rules.window = Some(Duration::from_secs(30 * 24 * 3600));
    let first = one(&db, &rules, event("w@example.com", BounceType::Soft)).await;
    assert!(
        matches!(first, Outcome::Recorded { action: None, .. }),
        "{first:?}"
    );
    assert_eq!(db.status(id).await.as_deref(), Some("enabled"));
    let second = one(&db, &rules, event("w@example.com", BounceType::Soft)).await;
    assert!(
        matches!(
            second,
            Outcome::Recorded {
                action: Some(Action::Blocklist),
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

#[tokio::test]
async fn record_after_threshold_keeps_storing() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("r@example.com").await;
    let mut rules = rules_with(
        BounceType::Hard,
        Rule {
            count: 1,
            action: Action::Blocklist,
        },
    );
    rules.record_after_threshold = true;
    for _ in 0..4 {
        let o = one(&db, &rules, event("r@example.com", BounceType::Hard)).await;
        assert!(matches!(o, Outcome::Recorded { .. }), "{o:?}");
    }
    assert_eq!(db.bounce_count(id).await, 4);
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

#[tokio::test]
async fn uuid_takes_precedence_over_email() {
    let db = TestDb::new().await;
    let (alice, _) = db.subscriber("alice@example.com").await;
    let (bob, bob_uuid) = db.subscriber("bob@example.com").await;
    let mut e = event("alice@example.com", BounceType::Soft);
    e.subscriber_uuid = Some(bob_uuid);
    one(&db, &Rules::default(), e).await;
    assert_eq!(db.bounce_count(bob).await, 1);
    assert_eq!(db.bounce_count(alice).await, 0);

    // An unknown UUID does not fall back to the e-mail (listmonk's query does not either).
    let mut e = event("alice@example.com", BounceType::Soft);
    e.subscriber_uuid = Some(Uuid::new_v4());
    assert_eq!(one(&db, &Rules::default(), e).await, Outcome::Unmatched);
    assert_eq!(db.bounce_count(alice).await, 0);
}

#[tokio::test]
async fn email_match_ignores_case() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("carol@example.com").await;
    let o = one(
        &db,
        &Rules::default(),
        event("CaRoL@Example.COM", BounceType::Soft),
    )
    .await;
    assert!(matches!(o, Outcome::Recorded { .. }), "{o:?}");
    assert_eq!(db.bounce_count(id).await, 1);
}

#[tokio::test]
async fn unknown_subscriber_is_kept_unmatched_and_unknown_campaign_is_null() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("dave@example.com").await;
    let (campaign_id, campaign_uuid) = db.campaign("November").await;

    let mut e = event("nobody@example.com", BounceType::Hard);
    e.campaign_uuid = Some(campaign_uuid);
    e.meta = serde_json::json!({"why": "x"});
    assert_eq!(one(&db, &Rules::default(), e).await, Outcome::Unmatched);
    let (email, campaign, meta): (String, Uuid, serde_json::Value) =
        sqlx::query_as("SELECT email, campaign_uuid, meta FROM bounceops.unmatched")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (email.as_str(), campaign),
        ("nobody@example.com", campaign_uuid)
    );
    assert_eq!(meta, serde_json::json!({"why": "x"}));

    let mut known = event("dave@example.com", BounceType::Soft);
    known.campaign_uuid = Some(campaign_uuid);
    one(&db, &Rules::default(), known).await;
    let mut unknown = event("dave@example.com", BounceType::Soft);
    unknown.campaign_uuid = Some(Uuid::new_v4());
    one(&db, &Rules::default(), unknown).await;
    let campaigns: Vec<Option<i32>> =
        sqlx::query_scalar("SELECT campaign_id FROM bounces WHERE subscriber_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(campaigns, vec![Some(campaign_id), None]);
}

/// The blocklisted-IP incident of docs/reasons.md: every recipient's server answers
/// "5.7.1 blocked". With the sender-side profile those bounces touch no subscriber.
#[tokio::test]
async fn an_ignored_sender_side_bounce_leaves_the_subscriber_alone() {
    let db = TestDb::new().await;
    let (id, uuid) = db.subscriber("erin@example.com").await;
    let (_, campaign) = db.campaign("December").await;
    // hard {1, blocklist}
    let rules = Rules {
        reasons: HashMap::from([(Reason::Blocked, ReasonType::Ignore)]),
        ..Rules::default()
    };

    let mut blocked = event("erin@example.com", BounceType::Hard);
    blocked.reason = Some(Reason::Blocked);
    blocked.campaign_uuid = Some(campaign);
    blocked.meta = serde_json::json!({"diagnostic": "550 5.7.1 blocked using zen.spamhaus.org"});
    let mut unknown = blocked.clone();
    unknown.email = Some("nobody@example.com".into());
    unknown.event_id = bounce_worker::event::received_id();
    let outcomes = record(&db.store(), &rules, &[blocked.clone(), unknown])
        .await
        .unwrap();
    assert_eq!(outcomes, [Outcome::Ignored, Outcome::Ignored]);
    assert_eq!(db.status(id).await.as_deref(), Some("enabled"));
    assert_eq!(db.list_statuses(id).await, vec!["confirmed"]);
    assert_eq!(db.total_bounces().await, 0);
    assert_eq!(db.unmatched_count().await, 0, "ignored, whoever it is for");
    let rows: Vec<(String, String, String, Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT email, type, reason, campaign_uuid, meta FROM bounceops.ignored ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "erin@example.com".to_owned(),
                "hard".to_owned(),
                "blocked".to_owned(),
                campaign,
                blocked.meta.clone()
            ),
            (
                "nobody@example.com".to_owned(),
                "hard".to_owned(),
                "blocked".to_owned(),
                campaign,
                blocked.meta.clone()
            ),
        ]
    );
    // A provider's retry of an ignored event is a duplicate, like any other.
    assert_eq!(one(&db, &rules, blocked.clone()).await, Outcome::Duplicate);

    // Without the rule, the very same bounce blocklists her: listmonk's semantics.
    blocked.event_id = bounce_worker::event::received_id();
    blocked.subscriber_uuid = Some(uuid);
    assert!(matches!(
        one(&db, &Rules::default(), blocked).await,
        Outcome::Recorded {
            action: Some(Action::Blocklist),
            ..
        }
    ));
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

#[tokio::test]
async fn a_reason_counted_as_soft_does_not_fire_the_hard_rule() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("frank@example.com").await;
    // hard {1, blocklist}, soft {2, none}
    let rules = Rules {
        reasons: HashMap::from([(Reason::MailboxFull, ReasonType::Soft)]),
        ..Rules::default()
    };

    let full = || {
        let mut e = event("frank@example.com", BounceType::Hard);
        e.reason = Some(Reason::MailboxFull);
        e
    };
    for _ in 0..3 {
        let outcome = one(&db, &rules, full()).await;
        assert_eq!(outcome.action(), None, "{outcome:?}");
    }
    assert_eq!(db.status(id).await.as_deref(), Some("enabled"));
    let types: Vec<String> =
        sqlx::query_scalar("SELECT type::text FROM bounces WHERE subscriber_id = $1")
            .bind(id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        types,
        ["soft", "soft"],
        "stored as soft, up to soft's count"
    );

    // A hard bounce of another reason still counts as hard.
    let mut unknown_user = event("frank@example.com", BounceType::Hard);
    unknown_user.reason = Some(Reason::UserUnknown);
    assert!(matches!(
        one(&db, &rules, unknown_user).await,
        Outcome::Recorded {
            action: Some(Action::Blocklist),
            ..
        }
    ));
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

#[tokio::test]
async fn blocklisted_subscriber_is_skipped() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("e@example.com").await;
    sqlx::query("UPDATE subscribers SET status = 'blocklisted' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    for t in [BounceType::Soft, BounceType::Hard, BounceType::Complaint] {
        assert_eq!(
            one(&db, &Rules::default(), event("e@example.com", t)).await,
            Outcome::Blocklisted
        );
    }
    assert_eq!(db.bounce_count(id).await, 0);
}

#[tokio::test]
async fn delete_cascades_to_bounces_and_lists() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("f@example.com").await;
    let rules = rules_with(
        BounceType::Soft,
        Rule {
            count: 2,
            action: Action::Delete,
        },
    );
    one(&db, &rules, event("f@example.com", BounceType::Soft)).await;
    assert_eq!(db.bounce_count(id).await, 1);
    one(&db, &rules, event("f@example.com", BounceType::Soft)).await;
    assert_eq!(db.status(id).await, None);
    assert_eq!(db.bounce_count(id).await, 0);
    assert!(db.list_statuses(id).await.is_empty());
}

#[tokio::test]
async fn provider_retries_are_recorded_once() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("g@example.com").await;
    let mut e = event("g@example.com", BounceType::Soft);
    e.event_id = "evt-1".into();
    let rules = Rules::default();
    // Twice in one batch, then again later.
    let outcomes = record(&db.store(), &rules, &[e.clone(), e.clone()])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Recorded { .. }));
    assert_eq!(outcomes[1], Outcome::Duplicate);
    assert_eq!(one(&db, &rules, e.clone()).await, Outcome::Duplicate);
    // The same id from another source is another event.
    e.source = "other".into();
    assert!(matches!(
        one(&db, &rules, e).await,
        Outcome::Recorded { .. }
    ));
    assert_eq!(db.bounce_count(id).await, 2);
}

#[tokio::test]
async fn a_batch_mixing_subscribers_keeps_arrival_order_per_subscriber() {
    let db = TestDb::new().await;
    let (a, _) = db.subscriber("a@example.com").await;
    let (b, _) = db.subscriber("b@example.com").await;
    let rules = rules_with(
        BounceType::Hard,
        Rule {
            count: 2,
            action: Action::Blocklist,
        },
    );
    let batch = vec![
        event("b@example.com", BounceType::Hard),
        event("a@example.com", BounceType::Hard),
        event("nobody@example.com", BounceType::Hard),
        event("b@example.com", BounceType::Hard),
        event("b@example.com", BounceType::Hard),
    ];
    let outcomes = record(&db.store(), &rules, &batch).await.unwrap();
    assert!(matches!(
        outcomes[0],
        Outcome::Recorded { action: None, .. }
    ));
    assert!(matches!(
        outcomes[1],
        Outcome::Recorded { action: None, .. }
    ));
    assert_eq!(outcomes[2], Outcome::Unmatched);
    assert!(matches!(
        outcomes[3],
        Outcome::Recorded {
            action: Some(Action::Blocklist),
            ..
        }
    ));
    assert_eq!(outcomes[4], Outcome::Blocklisted);
    assert_eq!(db.bounce_count(b).await, 2);
    assert_eq!(db.bounce_count(a).await, 1);
}

/// 16 simultaneous bounces for one subscriber, through two independent "replicas" (two
/// pools, two group-commit queues), with hard {3, blocklist}: exactly 3 rows and a
/// blocklisted subscriber, whatever the interleaving. Repeated to vary the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bounces_for_one_subscriber_are_race_free() {
    let db = TestDb::new().await;
    let rules = Arc::new(rules_with(
        BounceType::Hard,
        Rule {
            count: 3,
            action: Action::Blocklist,
        },
    ));
    let replicas: Vec<Ingest> = (0..2)
        .map(|_| Ingest::start(db.store(), rules.clone(), Metrics::new(), 6))
        .collect();
    for round in 0..5 {
        let email = format!("race{round}@example.com");
        let (id, _) = db.subscriber(&email).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let ingest = replicas[i % 2].clone();
                let e = event(&email, BounceType::Hard);
                tokio::spawn(async move { ingest.record(vec![e]).await.unwrap().remove(0) })
            })
            .collect();
        let mut recorded = 0;
        for t in tasks {
            if let Outcome::Recorded { .. } = t.await.unwrap() {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 3, "round {round}");
        assert_eq!(db.bounce_count(id).await, 3, "round {round}");
        assert_eq!(
            db.status(id).await.as_deref(),
            Some("blocklisted"),
            "round {round}"
        );
    }
}

/// Backends of the test database that are inside a transaction with nothing to do.
async fn idle_in_transaction(db: &TestDb) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle in transaction'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// [`idle_in_transaction`] once none is left, or after 5 s: a transaction ended by the
/// worker is rolled back as its connection goes back to the pool, a moment later.
async fn left_in_transaction(db: &TestDb) -> Vec<i32> {
    let mut open = idle_in_transaction(db).await;
    for _ in 0..500 {
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        open = idle_in_transaction(db).await;
    }
    open
}

/// Subscribers `a` and `b`, and a hard bounce of `a` recorded by a commit that began the
/// next batch's transaction, which `chain` holds (waiting at most `waits` for its batch).
struct Chained {
    db: TestDb,
    store: bounce_worker::store::Store,
    rules: Rules,
    a: i32,
    b: i32,
    chain: Chain,
}

async fn first_batch_chained(waits: Duration) -> Chained {
    let db = TestDb::new().await;
    let store = db.store();
    let rules = Rules::default();
    let (a, _) = db.subscriber("a@example.com").await;
    let (b, _) = db.subscriber("b@example.com").await;
    let mut chain = Chain::waiting(waits);
    let first = [event("a@example.com", BounceType::Hard)];
    record_chained(&store, &rules, &first, &mut chain, &|| true)
        .await
        .unwrap();
    Chained {
        db,
        store,
        rules,
        a,
        b,
        chain,
    }
}

/// A writer under load commits a batch with `COMMIT; BEGIN` (`record::Chain`): the batch
/// is committed all the same, and the next is recorded in the transaction begun for it,
/// whose clock started at that commit.
#[tokio::test]
async fn a_commit_that_begins_the_next_batch() {
    let Chained {
        db,
        store,
        rules,
        a,
        b,
        mut chain,
    } = first_batch_chained(Duration::from_secs(600)).await;
    assert!(chain.is_begun());
    assert_eq!(
        db.bounce_count(a).await,
        1,
        "committed: seen from another connection"
    );
    assert_eq!(
        idle_in_transaction(&db).await.len(),
        1,
        "the next batch's transaction"
    );
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let second = [event("b@example.com", BounceType::Hard)];
    record_chained(&store, &rules, &second, &mut chain, &|| false)
        .await
        .unwrap();
    assert!(!chain.is_begun(), "a plain commit when nothing more waits");
    assert_eq!(db.bounce_count(b).await, 1);
    let stamped: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM bounces WHERE subscriber_id = $1")
            .bind(b)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        stamped < before,
        "recorded in the transaction begun by the first commit ({stamped} < {before})"
    );
    assert!(idle_in_transaction(&db).await.is_empty());
}

/// A transaction begun ahead that waited too long is not used: the batch begins its own
/// (its clock is the batch's), and the one that waited is rolled back.
#[tokio::test]
async fn a_transaction_begun_ahead_that_waited_too_long_is_not_used() {
    let Chained {
        db,
        store,
        rules,
        a,
        b,
        mut chain,
    } = first_batch_chained(Duration::ZERO).await;
    assert!(chain.is_begun());
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let second = [event("b@example.com", BounceType::Hard)];
    record_chained(&store, &rules, &second, &mut chain, &|| false)
        .await
        .unwrap();
    assert_eq!((db.bounce_count(a).await, db.bounce_count(b).await), (1, 1));
    let stamped: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM bounces WHERE subscriber_id = $1")
            .bind(b)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        stamped >= before,
        "a transaction of its own ({stamped} >= {before})"
    );
    assert!(
        left_in_transaction(&db).await.is_empty(),
        "the one that waited is rolled back"
    );
}

/// Several writers under a burst: transactions are begun ahead while requests are queued,
/// but once every request is answered and the queue is idle, none is left open (a writer
/// ends its own before it waits, whether for requests or for another writer).
#[tokio::test]
async fn idle_writers_hold_no_transaction_open() {
    let db = TestDb::new().await;
    let ingest = Ingest::start(db.store(), Arc::new(Rules::default()), Metrics::new(), 3);
    for i in 0..50 {
        db.subscriber(&format!("burst{i}@example.com")).await;
    }
    for round in 0..3 {
        let sends: Vec<_> = (0..50)
            .map(|i| {
                let ingest = ingest.clone();
                let e = event(&format!("burst{i}@example.com"), BounceType::Soft);
                tokio::spawn(async move { ingest.record(vec![e]).await.unwrap() })
            })
            .collect();
        for s in sends {
            s.await.unwrap();
        }
        let open = left_in_transaction(&db).await;
        assert!(
            open.is_empty(),
            "round {round}: {open:?} still in a transaction"
        );
    }
    // The default soft rule (count 2, as listmonk's) stores no third soft bounce.
    assert_eq!(db.total_bounces().await, 100);
}

/// The database dropped the connection of a transaction begun ahead (a restart while it
/// waited): the batch begins again on another connection and is recorded.
#[tokio::test]
async fn a_transaction_begun_ahead_on_a_dropped_connection_begins_again() {
    let Chained {
        db,
        store,
        rules,
        a,
        b,
        mut chain,
    } = first_batch_chained(Duration::from_secs(600)).await;
    let waiting = idle_in_transaction(&db).await;
    assert_eq!(waiting.len(), 1);
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(waiting[0])
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(ended);
    // Gone once the server lists it no more (it ends as it reads the signal).
    for _ in 0..500 {
        if !idle_in_transaction(&db).await.contains(&waiting[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!idle_in_transaction(&db).await.contains(&waiting[0]));
    let second = [event("b@example.com", BounceType::Hard)];
    let outcomes = record_chained(&store, &rules, &second, &mut chain, &|| false)
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Recorded { .. }),
        "{outcomes:?}"
    );
    assert_eq!((db.bounce_count(a).await, db.bounce_count(b).await), (1, 1));
}

/// A bounce committed by another replica while this batch waited for the subscriber's lock
/// is counted: the state is read by a statement of its own once the lock is granted, so its
/// snapshot comes after that commit (a state read with the lock's own statement would miss
/// it). The second hard bounce blocklists, as it would have one after the other.
#[tokio::test]
async fn a_bounce_committed_while_the_lock_was_awaited_is_counted() {
    bounce_committed_while_the_lock_was_awaited(TestDb::new().await).await;
}

/// The same on a database whose transactions default to REPEATABLE READ (a setting some
/// installations make): there a transaction's first statement fixes its snapshot, before
/// the lock is granted, so the worker runs its batches at READ COMMITTED (each batch names
/// the level, and its connections default to it).
#[tokio::test]
async fn a_bounce_committed_while_the_lock_was_awaited_is_counted_under_repeatable_read() {
    bounce_committed_while_the_lock_was_awaited(repeatable_read_database().await).await;
}

/// A test database whose transactions default to REPEATABLE READ.
async fn repeatable_read_database() -> TestDb {
    let db = TestDb::new().await;
    sqlx::query(&format!(
        "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'",
        db.name
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    // The setting applies to connections made from now on, as the store's are (lazily).
    let mut fresh = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let isolation: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(isolation, "repeatable read");
    db
}

/// A dead letter's claim that waits for the same id claimed by another replica, which then
/// commits, does nothing (the event is a duplicate), also on a database whose transactions
/// default to REPEATABLE READ, where the same statement would fail to serialize: the
/// worker's connections default to READ COMMITTED.
#[tokio::test]
async fn a_dead_letter_claimed_meanwhile_is_a_duplicate_under_repeatable_read() {
    let db = repeatable_read_database().await;
    let e = event("parked@example.com", BounceType::Hard);
    // The other replica: has claimed the same id, not yet committed.
    let mut other = db.pool.begin().await.unwrap();
    assert!(common::claim(&mut other, &e.source, &e.event_id).await);
    let store = db.store();
    let parked = tokio::spawn(async move {
        bounce_worker::store::dead_letters::park(&store, &e, "refused").await
    });
    // Until the claim waits for the other replica's transaction (its snapshot is taken by
    // then).
    assert!(
        db.a_statement_waits_for("transactionid").await,
        "the dead letter's claim never waited for the other one"
    );
    other.commit().await.unwrap();
    let parked = parked.await.unwrap();
    assert!(matches!(parked, Ok(None)), "{parked:?}");
    let letters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.dead_letters")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(letters, 0);
}

async fn bounce_committed_while_the_lock_was_awaited(db: TestDb) {
    let (id, _) = db.subscriber("waited@example.com").await;
    let rules = rules_with(
        BounceType::Hard,
        Rule {
            count: 2,
            action: Action::Blocklist,
        },
    );
    // The other replica: holds the subscriber's lock and has written one hard bounce.
    let mut other = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(bounce_worker::store::locks::SUBSCRIBER)
        .bind(id)
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO bounces (subscriber_id, type, source, meta) VALUES ($1, 'hard', 'other', '{}')",
    )
    .bind(id)
    .execute(&mut *other)
    .await
    .unwrap();
    let store = db.store();
    let batch = tokio::spawn(async move {
        record(
            &store,
            &rules,
            &[event("waited@example.com", BounceType::Hard)],
        )
        .await
        .unwrap()
        .remove(0)
    });
    // Until the batch waits for the lock (its statement's snapshot is taken by then).
    assert!(
        db.a_statement_waits_for("advisory").await,
        "the batch never waited for the subscriber's lock"
    );
    other.commit().await.unwrap();
    let outcome = batch.await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Recorded {
                action: Some(Action::Blocklist),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(db.bounce_count(id).await, 2);
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

/// Every statement of a batch's claim is planned on indexes. Batches price sequential scans
/// out (`store::BEGIN_BATCH`), and a plan that needs one all the same costs past
/// `jit_above_cost`, so the server compiles it at every batch: 45 ms each where a batch
/// takes 2 (a one-row table read without its key did that, issue 24). Seen as the server
/// plans them (auto_explain, through psql, which shows the server's notices), for fresh ids
/// and for ids claimed before, eight times: from the sixth the server may use a generic
/// plan, as it does on the workers' pooled connections. No plan may scan a table
/// sequentially at all (newer servers no longer price a disabled scan at 10^10).
#[tokio::test]
async fn a_batchs_claim_plans_no_disabled_scan() {
    let db = TestDb::new().await;
    for i in 0..32 {
        db.subscriber(&format!("p{i}@example.com")).await;
    }
    let claim = "SELECT count(*) FROM bounceops.claim_batch(
        (SELECT array_agg('test'::text) FROM generate_series(0, 31)),
        (SELECT array_agg('evt-' || i) FROM generate_series(0, 31) i),
        (SELECT array_agg(NULL::bytea) FROM generate_series(0, 31)),
        (SELECT array_agg(TRUE) FROM generate_series(0, 31)),
        (SELECT array_agg(TRUE) FROM generate_series(0, 31)),
        (SELECT array_agg(NULL::uuid) FROM generate_series(0, 31)),
        (SELECT array_agg('p' || i || '@example.com') FROM generate_series(0, 31) i),
        1, NULL);";
    let script = format!(
        "LOAD 'auto_explain';
         SET auto_explain.log_min_duration = 0;
         SET auto_explain.log_nested_statements = on;
         SET auto_explain.log_level = notice;
         {begin};
         {claims}
         ROLLBACK;",
        begin = bounce_worker::store::BEGIN_BATCH,
        claims = claim.repeat(8),
    );
    let mut psql = std::process::Command::new("psql")
        .args([
            db.url.as_str(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql (Postgres' client) on PATH");
    use std::io::Write as _;
    psql.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = psql.wait_with_output().unwrap();
    let notices = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{notices}");
    let plans = notices.matches("Query Text:").count();
    assert!(plans >= 40, "auto_explain showed {plans} plans: {notices}");
    for bad in ["Seq Scan", "cost=10000000000", "JIT:"] {
        assert!(!notices.contains(bad), "a plan with {bad}: {notices}");
    }
}
