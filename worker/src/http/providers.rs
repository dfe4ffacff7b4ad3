//! Provider webhooks over HTTP, `POST /webhooks/service/{provider}`: the route, the
//! per-provider metrics, and what each `Rejection` answers.
//!
//! The body is read only once the head is admitted (`Provider::admit`): a request whose
//! credentials or signature headers are missing, wrong or stale is refused unread. A body
//! whose signature it carries, or covers, is read within a budget shared by all such
//! requests ([`UNVERIFIED_BODY_BYTES`]), so that unauthenticated senders cannot make the
//! worker hold more than that in bodies it has not verified: past it, a request waits up to
//! [`BUDGET_WAIT`] and is then answered 503 with `Retry-After`, which providers retry.
//! Bodies are read into one buffer of their announced length, never twice their size.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::OwnedSemaphorePermit;

use super::AppState;
use super::error::ApiError;
use crate::budget::ByteBudget;
use crate::event::Outcome;
use crate::metrics::Metrics;
use crate::providers::{Adapter, Admitted, Context, Head, Incoming, Received, Registry, Rejection};
use crate::store::Store;

/// Provider metrics, registered into the worker's one registry.
#[derive(Clone)]
pub struct ProviderMetrics {
    pub requests: IntCounterVec,
    pub events: IntCounterVec,
    pub signature_failures: IntCounterVec,
    pub duplicates: IntCounterVec,
}

impl ProviderMetrics {
    fn new(metrics: &Metrics) -> ProviderMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            metrics
                .registry()
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        ProviderMetrics {
            requests: counter(
                "bounceops_provider_requests_total",
                "Provider webhook requests by provider and response status.",
                &["provider", "status"],
            ),
            events: counter(
                "bounceops_provider_events_total",
                "Bounce events committed from provider webhooks, by provider and type.",
                &["provider", "type"],
            ),
            signature_failures: counter(
                "bounceops_provider_signature_failures_total",
                "Provider requests refused by signature or credential checks, by provider and check.",
                &["provider", "check"],
            ),
            duplicates: counter(
                "bounceops_provider_duplicates_total",
                "Provider events already recorded before (retries), by provider.",
                &["provider"],
            ),
        }
    }
}

/// The providers at run time: the registry plus what the route needs around it.
pub struct Providers {
    registry: Registry,
    metrics: ProviderMetrics,
    ctx: Context,
    max_body_bytes: usize,
    /// The budget of unverified bodies.
    unverified: ByteBudget,
}

/// Bytes of bodies read before their signature is verified, across requests, by default
/// (`BOUNCEOPS_UNVERIFIED_BODY_BYTES`): 16 bodies of the default 1 MiB limit, and what
/// keeps a worker under 64 MiB while unauthenticated senders post as fast as they can (see
/// BENCHMARKS.md). Counted in KiB.
pub const UNVERIFIED_BODY_BYTES: usize = 16 << 20;
/// How long a request waits for room in that budget before it is answered 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Certificate fetches and subscription confirmations must not hold a request for long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

impl Providers {
    /// `max_body_bytes` bounds each body (413 beyond it); `unverified_body_bytes` all the
    /// bodies read and not yet verified at once.
    pub fn new(
        registry: Registry,
        store: Store,
        metrics: &Metrics,
        max_body_bytes: usize,
        unverified_body_bytes: usize,
    ) -> Providers {
        for name in registry.names() {
            for warning in registry.get(name).map(|p| p.warnings()).unwrap_or_default() {
                tracing::warn!(provider = name, "{warning}");
            }
        }
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            // A redirect would lead away from the URL whose shape was checked.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with a static configuration");
        Providers {
            registry,
            metrics: ProviderMetrics::new(metrics),
            ctx: Context { store, http },
            max_body_bytes,
            unverified: ByteBudget::new(unverified_body_bytes.max(1) as u64),
        }
    }

    /// Room for a body of `len` bytes in the budget of unverified bodies; a body larger
    /// than the whole budget takes all of it.
    async fn reserve(&self, len: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        // At least a KiB, so that every body waits its turn.
        tokio::time::timeout(BUDGET_WAIT, self.unverified.take(len.max(1) as u64))
            .await
            .map_err(|_| ApiError::UnverifiedBodiesBusy)
    }
}

/// Reads `body` up to `limit` bytes (413 beyond) into one buffer sized by the announced
/// length (`hint`), so that a body is held once: collecting chunks and then joining them
/// would hold it twice at the end.
async fn read_body(body: Body, limit: usize, hint: Option<usize>) -> Result<Bytes, ApiError> {
    if hint.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge);
    }
    let mut buf = BytesMut::with_capacity(hint.unwrap_or(0));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/service/{provider}", post(receive))
}

async fn receive(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let providers = &app.providers;
    let Some(provider) = providers.registry.get(&name) else {
        providers
            .metrics
            .requests
            .with_label_values(&["not_enabled", "404"])
            .inc();
        return ApiError::NotFound(format!("provider {name:?} is not enabled")).into_response();
    };
    let label = provider.name();
    let response = match handle(&app, provider.as_ref(), headers, query, body).await {
        Ok(r) => r,
        Err(e) => {
            if let Failure::Rejected(Rejection::Unauthorized(check)) = &e {
                providers
                    .metrics
                    .signature_failures
                    .with_label_values(&[label, check])
                    .inc();
            }
            e.into_response()
        }
    };
    providers
        .metrics
        .requests
        .with_label_values(&[label, response.status().as_str()])
        .inc();
    response
}

async fn handle(
    app: &AppState,
    provider: &dyn Adapter,
    headers: HeaderMap,
    query: Option<String>,
    body: Body,
) -> Result<Response, Failure> {
    let providers = &app.providers;
    let now = Utc::now();
    let head = Head {
        headers: &headers,
        query: query.as_deref(),
        now,
    };
    let admitted = provider.admit(&head)?;
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = providers.max_body_bytes;
    // Held until the request is answered: its events hold what the body held.
    let _room = match admitted {
        Admitted::Authenticated => None,
        Admitted::BodyToVerify => Some(
            providers
                .reserve(announced.unwrap_or(limit).min(limit))
                .await?,
        ),
    };
    let incoming = Incoming {
        body: read_body(body, limit, announced).await?,
        headers,
        query,
        now,
    };
    match provider.receive(&incoming, &providers.ctx).await? {
        Received::Events(events) => {
            let kinds: Vec<_> = events.iter().map(|e| e.bounce_type).collect();
            let outcomes = app.ingest.record(events).await.map_err(ApiError::from)?;
            let name = provider.name();
            for (kind, outcome) in kinds.iter().zip(&outcomes) {
                if *outcome == Outcome::Duplicate {
                    providers
                        .metrics
                        .duplicates
                        .with_label_values(&[name])
                        .inc();
                } else {
                    providers
                        .metrics
                        .events
                        .with_label_values(&[name, kind.as_str()])
                        .inc();
                }
            }
            Ok(Json(serde_json::json!({ "data": true })).into_response())
        }
        Received::Reply(body) => Ok(Json(body).into_response()),
        Received::Confirm(url) => {
            let answer = providers.ctx.http.get(url).send().await;
            match answer {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(provider = provider.name(), "subscription confirmed");
                    Ok(Json(serde_json::json!({ "data": true })).into_response())
                }
                Ok(r) => Err(Rejection::Upstream(format!(
                    "subscription confirmation answered {}",
                    r.status()
                ))
                .into()),
                Err(e) => Err(Rejection::Upstream(format!(
                    "subscription confirmation failed: {}",
                    without_url(e)
                ))
                .into()),
            }
        }
    }
}

/// Why a provider request failed: the adapter refused it, or the rest of the HTTP layer
/// did (the body, the database).
enum Failure {
    Rejected(Rejection),
    Api(ApiError),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Failure::Rejected(r)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let rejection = match self {
            Failure::Api(e) => return e.into_response(),
            Failure::Rejected(r) => r,
        };
        match rejection {
            Rejection::Unauthorized(check) => ApiError::ProviderUnauthorized(check),
            Rejection::Malformed(m) => ApiError::BadRequest(m),
            Rejection::Upstream(m) => ApiError::BadGateway(m),
            Rejection::Retry(m) => ApiError::ProviderCheckUnavailable(m),
            Rejection::Store(e) => ApiError::from(e),
        }
        .into_response()
    }
}

/// Subscription URLs carry a token; errors are reported without it.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
