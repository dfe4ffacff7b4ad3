//! Operations endpoints (`/metrics`, `/healthz`, `/readyz`) and the middleware that counts
//! and times every request.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// Unauthenticated, so it says only whether: the reason (a database's error text names
/// hosts, users and schemas) goes to the log.
async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => {
            crate::warn_throttled!(%why, "/readyz: not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
        }
    }
}

/// Every request gets an answer within `deadline`: past it, 503 with `Retry-After`, so a
/// sender retries instead of holding a connection on a worker that is stuck (the database
/// hanging rather than refusing). Written here rather than with tower-http's TimeoutLayer,
/// whose answer is a bare 408 that senders do not retry. A streamed export counts only
/// until its first byte: its body is not cut.
pub async fn deadline(State(deadline): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            crate::warn_throttled!(
                ?deadline,
                "request answered 503: no answer within the deadline"
            );
            super::error::ApiError::DeadlineExceeded(deadline).into_response()
        }
    }
}

/// The `method` label: the standard methods by name, anything else (a client may send any
/// token as a method) as `other`, so no caller can create series at will.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts and times requests by their route template (never the raw path, whose ids would
/// make one series per bounce).
pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics
        .http_duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_deadline_is_answered_503_with_retry_after() {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_secs(30),
                deadline,
            ));
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let slow = app.clone().oneshot(get("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slow.headers()[axum::http::header::RETRY_AFTER], "5");
        let fast = app.oneshot(get("/fast")).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }

    /// The deadline bounds the time to the answer's head only: a body streamed for longer
    /// (a large export) arrives whole.
    #[tokio::test(start_paused = true)]
    async fn a_streamed_body_may_outlast_the_deadline() {
        use futures::StreamExt as _;
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route(
                "/stream",
                axum::routing::get(|| async {
                    let lines = futures::stream::iter(0..6).then(|i| async move {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        Ok::<_, std::convert::Infallible>(format!("{i}\n"))
                    });
                    axum::body::Body::from_stream(lines)
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_secs(30),
                deadline,
            ));
        let request = axum::http::Request::get("/stream")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, "0\n1\n2\n3\n4\n5\n");
    }

    #[test]
    fn the_method_label_has_a_bounded_set_of_values() {
        assert_eq!(method_label(&axum::http::Method::POST), "POST");
        for made_up in ["BREW", "PROPFIND", "X-ANYTHING-1"] {
            let m = axum::http::Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}
