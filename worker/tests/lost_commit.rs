//! Exactly once when the answer to COMMIT is lost (issue: a commit that succeeded, an
//! error for its sender, a retry, a bounce stored twice). A proxy between the worker and
//! Postgres breaks the connection right after COMMIT: once after the server committed,
//! once before the server saw it. Senders retry until they get an answer, as providers and
//! listmonk-style senders do.

mod common;

use std::sync::Arc;

use bounce_worker::event::{BounceEvent, BounceType, Outcome, received_id};
use bounce_worker::ingest::{Ingest, IngestError};
use bounce_worker::metrics::Metrics;
use bounce_worker::rules::Rules;
use bounce_worker::store::Store;
use bounce_worker::store::record::{self, Chain, RecordError};
use common::commit_trap::{CommitTrap, Fate};
use common::{TestDb, server_addr};

fn bounce(email: &str) -> BounceEvent {
    BounceEvent {
        email: Some(email.into()),
        subscriber_uuid: None,
        campaign_uuid: None,
        bounce_type: BounceType::Hard,
        source: "api".into(),
        meta: serde_json::json!({}),
        created_at: None,
        event_id: received_id(),
        reason: None,
        evidence: None,
        request_digest: None,
    }
}

struct Rig {
    db: TestDb,
    trap: CommitTrap,
    ingest: Ingest,
}

async fn rig() -> Rig {
    let db = TestDb::new().await;
    let trap = CommitTrap::start(server_addr(&db.url)).await;
    let store = Store::connect_lazy(&trap.url_for(&db.url), 4).unwrap();
    let ingest = Ingest::start(store, Arc::new(Rules::default()), Metrics::new(), 1);
    Rig { db, trap, ingest }
}

/// Sends `make()` until it is answered; like the generic webhook, each attempt is a new
/// receipt (a new identity). Returns the answer and how many attempts it took.
async fn send_until_answered(ingest: &Ingest, make: impl Fn() -> BounceEvent) -> (Outcome, usize) {
    for attempt in 1..=5 {
        match ingest.record(vec![make()]).await {
            Ok(mut outcomes) => return (outcomes.remove(0), attempt),
            Err(IngestError::Unavailable(_)) => continue,
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
    }
    panic!("no answer after 5 attempts");
}

#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_confirmed_not_repeated() {
    let r = rig().await;
    let (id, _) = r.db.subscriber("lost@example.com").await;
    r.trap.arm(Fate::CommittedAnswerLost);
    let (outcome, attempts) = send_until_answered(&r.ingest, || bounce("lost@example.com")).await;
    assert_eq!(r.trap.sprung(), 1, "the COMMIT went through the trap");
    assert_eq!(
        (outcome, attempts),
        (Outcome::Committed, 1),
        "the worker found its batch committed and said so at once"
    );
    assert_eq!(r.db.bounce_count(id).await, 1, "stored exactly once");
}

#[tokio::test]
async fn a_commit_that_never_arrived_fails_and_the_retry_records_once() {
    let r = rig().await;
    let (id, _) = r.db.subscriber("never@example.com").await;
    r.trap.arm(Fate::NeverSent);
    let (outcome, attempts) = send_until_answered(&r.ingest, || bounce("never@example.com")).await;
    assert_eq!(r.trap.sprung(), 1);
    assert_eq!(
        attempts, 2,
        "the first attempt was refused, the second recorded"
    );
    assert!(matches!(outcome, Outcome::Recorded { .. }), "{outcome:?}");
    assert_eq!(r.db.bounce_count(id).await, 1, "stored exactly once");
}

/// Many senders at once share one transaction (group commit); losing its COMMIT answer
/// must leave every one of their bounces stored once.
#[tokio::test]
async fn a_group_commit_whose_answer_is_lost_stores_each_bounce_once() {
    let r = rig().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(r.db.subscriber(&format!("g{i}@example.com")).await.0);
    }
    r.trap.arm(Fate::CommittedAnswerLost);
    let sends = (0..40).map(|i| {
        let ingest = r.ingest.clone();
        tokio::spawn(async move {
            let email = format!("g{i}@example.com");
            send_until_answered(&ingest, || bounce(&email)).await
        })
    });
    let answers = futures::future::join_all(sends).await;
    assert_eq!(r.trap.sprung(), 1);
    for answer in answers {
        let (outcome, _) = answer.unwrap();
        assert!(
            matches!(outcome, Outcome::Committed | Outcome::Recorded { .. }),
            "{outcome:?}"
        );
    }
    for id in ids {
        assert_eq!(r.db.bounce_count(id).await, 1, "subscriber {id}");
    }
}

/// A batch's COMMIT that also begins the next batch's transaction (`record::Chain`, a
/// writer under load), its answer lost or never sent: the batch is found committed, or
/// not, exactly as after a plain COMMIT, and no transaction is left begun.
#[tokio::test]
async fn a_commit_that_begins_the_next_batch_is_settled_like_any() {
    for fate in [Fate::CommittedAnswerLost, Fate::NeverSent] {
        let db = TestDb::new().await;
        let trap = CommitTrap::start(server_addr(&db.url)).await;
        let store = Store::connect_lazy(&trap.url_for(&db.url), 4).unwrap();
        let (id, _) = db.subscriber("chained@example.com").await;
        let events = vec![bounce("chained@example.com")];
        trap.arm(fate);
        let mut chain = Chain::default();
        let more = || true;
        let result =
            record::record_chained(&store, &Rules::default(), &events, &mut chain, &more).await;
        assert!(
            matches!(result, Err(RecordError::CommitUnknown(_))),
            "{fate:?}: {result:?}"
        );
        assert_eq!(
            trap.sprung(),
            1,
            "{fate:?}: the chained COMMIT went through the trap"
        );
        assert!(!chain.is_begun(), "{fate:?}");
        let committed = record::committed(&store, &events).await.unwrap();
        assert_eq!(committed, fate == Fate::CommittedAnswerLost, "{fate:?}");
        assert_eq!(db.bounce_count(id).await, i64::from(committed), "{fate:?}");
    }
}
