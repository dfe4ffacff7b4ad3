//! Group commit: events from concurrent requests are recorded together, in one
//! transaction, by a fixed set of writer tasks.
//!
//! A request hands its events to `Ingest::record` and waits for the commit of the batch
//! that carried them, so a 2xx still means "committed". While one batch is being written,
//! new requests queue up; the next free writer takes them all (up to `MAX_BATCH_EVENTS`),
//! so under load many events share one transaction and one WAL flush, and when idle a
//! lone event is written at once, without waiting for company.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::event::{BounceEvent, Outcome};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::{Store, record};

const MAX_BATCH_EVENTS: usize = 128;
const QUEUE_JOBS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the worker is shutting down")]
    Closed,
}

struct Job {
    events: Vec<BounceEvent>,
    reply: Reply,
}

#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts `writers` writer tasks; each holds at most one database connection.
    pub fn start(store: Store, rules: Arc<Rules>, metrics: Metrics, writers: usize) -> Ingest {
        let (queue, rx) = mpsc::channel(QUEUE_JOBS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                rx.clone(),
                store.clone(),
                rules.clone(),
                metrics.clone(),
            ));
        }
        Ingest { queue }
    }

    /// Records `events`; returns when they are committed (or failed, with nothing of them
    /// committed). Outcomes come back in the order of `events`.
    pub async fn record(&self, events: Vec<BounceEvent>) -> Result<Vec<Outcome>, IngestError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { events, reply })
            .await
            .map_err(|_| IngestError::Closed)?;
        answer.await.map_err(|_| IngestError::Closed)?
    }
}

async fn writer(
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    store: Store,
    rules: Arc<Rules>,
    metrics: Metrics,
) {
    loop {
        let jobs = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return; // every sender dropped: shutting down
            };
            let mut size = first.events.len();
            let mut jobs = vec![first];
            while size < MAX_BATCH_EVENTS {
                match queue.try_recv() {
                    Ok(job) => {
                        size += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        write_batch(&store, &rules, &metrics, jobs).await;
    }
}

async fn write_batch(store: &Store, rules: &Rules, metrics: &Metrics, jobs: Vec<Job>) {
    // The jobs' events side by side in one list (moved, not copied: an event's meta
    // can be kilobytes), and where each job's share of it ends.
    let mut events: Vec<BounceEvent> =
        Vec::with_capacity(jobs.iter().map(|j| j.events.len()).sum());
    let mut shares = Vec::with_capacity(jobs.len());
    for job in jobs {
        let start = events.len();
        events.extend(job.events);
        shares.push((start..events.len(), job.reply));
    }
    metrics.batch_size.observe(events.len() as f64);
    match record::record(store.pool(), rules, &events).await {
        Ok(outcomes) => {
            for (range, reply) in shares {
                let mine = outcomes[range.clone()].to_vec();
                metrics.observe_outcomes(&events[range], &mine);
                let _ = reply.send(Ok(mine));
            }
        }
        // One bad job must not fail its neighbours: retry each job in its own transaction.
        Err(e) if shares.len() > 1 => {
            tracing::warn!(error = %e, jobs = shares.len(), "batch failed; retrying jobs one by one");
            for (range, reply) in shares {
                let mine = &events[range];
                let result = record::record(store.pool(), rules, mine).await;
                finish(metrics, mine, reply, result);
            }
        }
        Err(e) => {
            if let Some((_, reply)) = shares.into_iter().next() {
                finish(metrics, &events, reply, Err(e));
            }
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, IngestError>>;

fn finish(
    metrics: &Metrics,
    events: &[BounceEvent],
    reply: Reply,
    result: Result<Vec<Outcome>, sqlx::Error>,
) {
    match result {
        Ok(outcomes) => {
            metrics.observe_outcomes(events, &outcomes);
            let _ = reply.send(Ok(outcomes));
        }
        Err(e) => {
            metrics.db_errors.with_label_values(&["record"]).inc();
            tracing::error!(error = %e, "recording bounces failed");
            let _ = reply.send(Err(IngestError::Database(e)));
        }
    }
}
