//! Provider webhooks, `POST /webhooks/service/{provider}`: the interface every provider
//! adapter implements, the registry of enabled adapters, the route handler and the
//! per-provider metrics.
//!
//! A request goes through the same steps for every provider: the adapter `verify`s the raw
//! request (headers and body bytes, nothing parsed that the signature does not cover yet),
//! then `parse`s it into bounce events or a handshake; the handler records the events and
//! answers 2xx only once they are committed. Adding a provider is one file implementing
//! `Provider` plus one line in `Registry::load`.
//!
//! - `common`: helpers the adapters share (HMAC, constant-time comparison, timestamps,
//!   finding listmonk's campaign in headers or metadata, Basic/token credentials).
//! - `replay`: single-use signature tokens across replicas (Mailgun).
//! - one module per provider.

pub mod azure;
pub mod brevo;
pub mod common;
pub mod forwardemail;
pub mod lettermint;
pub mod mailgun;
pub mod mailjet;
pub mod postmark;
pub mod replay;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod sparkpost;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bounceops_api::{ProvidersSpec, SecretRef};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prometheus::{IntCounterVec, Opts};

use crate::event::{BounceEvent, Outcome};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::metrics::Metrics;
use crate::secrets::SecretsDir;
use crate::store::Store;

/// One provider's adapter.
pub trait Provider: Send + Sync + 'static {
    /// The path segment, the `source` of its bounces and the `provider` metric label.
    fn name(&self) -> &'static str;

    /// Authenticates the raw request. Runs before `parse`; a failure is a 401 whose message
    /// names the check that failed (never a secret).
    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>>;

    /// Turns a verified request into what the handler should do. Pure: no I/O.
    fn parse(&self, req: &Incoming) -> Result<Received, Rejection>;

    /// Configuration that is allowed but risky, logged once at start-up.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The request as an adapter sees it: the raw bytes, untouched.
pub struct Incoming {
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    /// The clock for timestamp tolerances (a field, so tests and benchmarks are repeatable).
    pub now: DateTime<Utc>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What a verified request asks for.
#[derive(Debug)]
pub enum Received {
    /// Bounces to record; an empty list is acknowledged (deliveries, opens, tests).
    Events(Vec<BounceEvent>),
    /// A handshake answered with this JSON and nothing recorded (Event Grid validation).
    Reply(serde_json::Value),
    /// Confirm a subscription by GETting this URL, which the signature covered (SNS).
    Confirm(reqwest::Url),
}

/// Why a request is refused.
#[derive(Debug)]
pub enum Rejection {
    /// 401: the named check failed.
    Unauthorized(&'static str),
    /// 400: the body is not what the provider sends.
    Malformed(String),
    /// 502: a handshake with the provider failed; the provider retries.
    Upstream(String),
    /// 503: something the check needs is unreachable for now (a signing certificate); the
    /// provider retries, as it does while the database is down.
    Retry(&'static str),
    /// Anything the rest of the HTTP layer reports (503 when the database is down).
    Api(ApiError),
}

impl From<ApiError> for Rejection {
    fn from(e: ApiError) -> Self {
        Rejection::Api(e)
    }
}

impl From<sqlx::Error> for Rejection {
    fn from(e: sqlx::Error) -> Self {
        Rejection::Api(e.into())
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, message) = match self {
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
            Rejection::Api(e) => return e.into_response(),
        };
        (status, Json(serde_json::json!({ "message": message }))).into_response()
    }
}

/// What adapters may use while verifying.
pub struct Context {
    pub store: Store,
    /// For SNS certificates and subscription confirmations; every call has a timeout.
    pub http: reqwest::Client,
}

/// A configuration problem: (field path, message), as `config` reports it.
pub type ConfigIssue = (String, String);

/// The enabled providers, resolved from the configuration (secrets read, keys parsed).
#[derive(Clone, Default)]
pub struct Registry(BTreeMap<&'static str, Arc<dyn Provider>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Registry {
    /// Resolves every enabled provider; an enabled provider without its secret is an error.
    pub fn load(spec: &ProvidersSpec, secrets: &SecretsDir) -> Result<Registry, ConfigIssue> {
        let mut r = Registry::default();
        r.add(ses::Ses::load(&spec.ses)?);
        r.add(sendgrid::Sendgrid::load(&spec.sendgrid, secrets)?);
        r.add(postmark::Postmark::load(&spec.postmark, secrets)?);
        r.add(forwardemail::Forwardemail::load(
            &spec.forwardemail,
            secrets,
        )?);
        r.add(mailgun::Mailgun::load(&spec.mailgun, secrets)?);
        r.add(lettermint::Lettermint::load(&spec.lettermint, secrets)?);
        r.add(azure::Azure::load(&spec.azure, secrets)?);
        r.add(resend::Resend::load(&spec.resend, secrets)?);
        r.add(brevo::load(&spec.brevo, secrets)?);
        r.add(mailjet::load(&spec.mailjet, secrets)?);
        r.add(sparkpost::load(&spec.sparkpost, secrets)?);
        Ok(r)
    }

    fn add<P: Provider>(&mut self, provider: Option<P>) {
        if let Some(p) = provider {
            self.0.insert(p.name(), Arc::new(p));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

/// Reads the secret an enabled provider requires; `field` is the path under
/// `spec.providers.`, e.g. `sendgrid.publicKeySecretRef`. `validate` refuses an enabled
/// provider without its reference, so `None` only comes from a caller that skipped it:
/// an error in the same words rather than a panic.
pub fn required_secret(
    secrets: &SecretsDir,
    field: &str,
    r: Option<&SecretRef>,
) -> Result<String, ConfigIssue> {
    let field = format!("spec.providers.{field}");
    let r = r.ok_or_else(|| {
        (
            field.clone(),
            "required when the provider is enabled".into(),
        )
    })?;
    secrets
        .read(r)
        .map_err(|e| (field, format!("secret {}/{}: {e}", r.name, r.key)))
}

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

/// The providers at run time: the registry plus what the handler needs around it.
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
            if let Rejection::Unauthorized(check) = &e {
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
    provider: &dyn Provider,
    headers: HeaderMap,
    query: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Rejection> {
    let providers = &app.providers;
    let incoming = Incoming {
        headers,
        query,
        body: body.map_err(ApiError::from)?,
        now: Utc::now(),
    };
    provider.verify(&incoming, &providers.ctx).await?;
    match provider.parse(&incoming)? {
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
                ))),
                Err(e) => Err(Rejection::Upstream(format!(
                    "subscription confirmation failed: {}",
                    without_url(e)
                ))),
            }
        }
    }
}

/// Subscription URLs carry a token; errors are reported without it.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
