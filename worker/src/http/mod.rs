//! The worker's HTTP interface: one router built from small routers per area.
//!
//! - `webhook`: listmonk's generic bounce webhook.
//! - `providers`: the provider webhooks' route and metrics.
//! - `bounces`: listmonk's bounce API and the streaming export.
//! - `dead_letters`: the events the database refused, parked.
//! - `kept`: the bounces kept in the worker's own tables (unmatched, ignored).
//! - `paging`: listmonk's `page` / `per_page`, read as listmonk reads them.
//! - `evidence`: the mail (or provider event) that caused a bounce.
//! - `ops`: metrics, health, readiness, and the request metrics middleware.
//! - `error`: the one error type every handler returns.
//! - `redact`: request URIs as they are logged, query credentials hidden.

pub mod bounces;
pub mod dead_letters;
pub mod error;
pub mod evidence;
pub mod kept;
pub mod ops;
pub mod paging;
pub mod providers;
pub mod redact;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::{AuthError, Credentials};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::Store;
use error::ApiError;

/// Everything a handler may use.
pub struct App {
    pub store: Store,
    pub ingest: Ingest,
    pub credentials: Credentials,
    pub metrics: Metrics,
    pub generic_webhook: bool,
    pub providers: providers::Providers,
}

pub type AppState = Arc<App>;

/// The full router. `max_body_bytes` bounds every request body (413 beyond it);
/// `deadline` bounds the time to an answer (503 with `Retry-After` beyond it).
pub fn router(app: AppState, max_body_bytes: usize, deadline: Duration) -> Router {
    Router::new()
        .merge(webhook::routes())
        .merge(providers::routes())
        .merge(bounces::routes())
        .merge(dead_letters::routes())
        .merge(evidence::routes())
        .merge(kept::routes())
        .merge(ops::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(deadline, ops::deadline))
        .layer(middleware::from_fn_with_state(app.clone(), ops::track))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(redact::span)
                .on_failure(failed),
        )
        // Browsers must not guess a type for what we serve: a kept bounce mail or provider
        // event is attacker-written text.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(app)
}

/// A 5xx answer, which tower-http's default logs at every request: while the database is
/// down that is a line per retry from every sender. The cause is logged where it is met
/// (`database unavailable`, throttled as well); this says that answers fail, and how often.
fn failed(class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span) {
    crate::error_throttled!(
        classification = %class,
        latency_ms = latency.as_millis() as u64,
        "response failed"
    );
}

/// Extractor that admits only callers with valid API credentials.
pub struct Authenticated;

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match app.credentials.verify_header(header) {
            Ok(()) => Ok(Authenticated),
            Err(AuthError::Missing) => Err(ApiError::Unauthorized),
            Err(AuthError::Wrong) => Err(ApiError::Forbidden),
        }
    }
}
