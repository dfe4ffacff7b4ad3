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
    reply: oneshot::Sender<Result<Vec<Outcome>, IngestError>>,
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
    let events: Vec<BounceEvent> = jobs.iter().flat_map(|j| j.events.clone()).collect();
    metrics.batch_size.observe(events.len() as f64);
    match record::record(store.pool(), rules, &events).await {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for job in jobs {
                let mine: Vec<Outcome> = outcomes.by_ref().take(job.events.len()).collect();
                metrics.observe_outcomes(&job.events, &mine);
                let _ = job.reply.send(Ok(mine));
            }
        }
        // One bad job must not fail its neighbours: retry each job in its own transaction.
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, jobs = jobs.len(), "batch failed; retrying jobs one by one");
            for job in jobs {
                let result = record::record(store.pool(), rules, &job.events).await;
                finish(metrics, job, result);
            }
        }
        Err(e) => {
            let job = jobs.into_iter().next().expect("one job");
            finish(metrics, job, Err(e));
        }
    }
}

fn finish(metrics: &Metrics, job: Job, result: Result<Vec<Outcome>, sqlx::Error>) {
    match result {
        Ok(outcomes) => {
            metrics.observe_outcomes(&job.events, &outcomes);
            let _ = job.reply.send(Ok(outcomes));
        }
        Err(e) => {
            metrics.db_errors.with_label_values(&["record"]).inc();
            tracing::error!(error = %e, "recording bounces failed");
            let _ = job.reply.send(Err(IngestError::Database(e)));
        }
    }
}
