//! Provider webhooks over HTTP, `POST /webhooks/service/{provider}`: the route, the
//! per-provider metrics, and what each `Rejection` answers.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use chrono::Utc;
use prometheus::{IntCounterVec, Opts};

use super::AppState;
use super::error::ApiError;
use crate::event::Outcome;
use crate::metrics::Metrics;
use crate::providers::{Adapter, Context, Incoming, Received, Registry, Rejection};
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
}

/// Certificate fetches and subscription confirmations must not hold a request for long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

impl Providers {
    pub fn new(registry: Registry, store: Store, metrics: &Metrics) -> Providers {
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
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/service/{provider}", post(receive))
}

async fn receive(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let providers = &app.providers;
    let incoming = Incoming {
        headers,
        query,
        body: body.map_err(ApiError::from)?,
        now: Utc::now(),
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
        let (status, message) = match rejection {
            Rejection::Unauthorized(check) => (StatusCode::UNAUTHORIZED, check.to_owned()),
            Rejection::Malformed(m) => (StatusCode::BAD_REQUEST, m),
            Rejection::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
            Rejection::Retry(m) => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "message": m })),
                )
                    .into_response();
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("30"),
                );
                return response;
            }
            Rejection::Store(e) => return ApiError::from(e).into_response(),
        };
        (status, Json(serde_json::json!({ "message": message }))).into_response()
    }
}

/// Subscription URLs carry a token; errors are reported without it.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
