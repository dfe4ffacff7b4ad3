//! The one error type of the HTTP layer, rendered as listmonk renders errors:
//! `{"message": "..."}` with a fitting status code. Every error answer of the worker is
//! made here, `Retry-After` included: the route handlers, the provider webhooks'
//! refusals (`http::providers`) and the request deadline (`http::ops`) all return one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ingest::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or malformed credentials")]
    Unauthorized,
    #[error("invalid credentials")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("request body too large")]
    TooLarge,
    /// Well-formed, but not to be carried out: an `Idempotency-Key` reused for another
    /// body, a bounce the database refuses to store (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The database cannot be reached or failed: the caller should retry later.
    #[error("database unavailable, retry later")]
    Unavailable,
    /// The budget of provider bodies read before their signature is verified is spent:
    /// the provider should retry later.
    #[error("too many unverified request bodies are being read, retry later")]
    UnverifiedBodiesBusy,
    /// Every export connection is streaming an export: the caller should retry later.
    #[error("all {0} export connections are in use by other exports, retry later")]
    ExportsBusy(u32),
    /// Stored data that cannot be served (a kept message that does not decompress): a
    /// fault of ours, named so that the caller can report it.
    #[error("{0}")]
    Damaged(String),
    /// A fault of ours (a query the database refused): logged, never detailed to callers.
    #[error("internal error")]
    Internal,
    /// No answer was ready within the request deadline (`BOUNCEOPS_REQUEST_TIMEOUT`).
    #[error("no answer within {} s; retry later", .0.as_secs_f64())]
    DeadlineExceeded(std::time::Duration),
    /// A provider webhook's own check failed (a signature, a token, a timestamp): 401
    /// naming the check, without the Basic challenge of the API's own credentials.
    #[error("{0}")]
    ProviderUnauthorized(&'static str),
    /// A handshake with the provider failed (an SNS subscription confirmation); the
    /// provider retries.
    #[error("{0}")]
    BadGateway(String),
    /// Something a provider's check needs is unreachable for now (its signing
    /// certificate); the provider retries.
    #[error("{0}")]
    ProviderCheckUnavailable(&'static str),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable
            | ApiError::ExportsBusy(_)
            | ApiError::UnverifiedBodiesBusy
            | ApiError::DeadlineExceeded(_)
            | ApiError::ProviderCheckUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Damaged(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ProviderUnauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Seconds a caller should wait before retrying, for the answers that ask it to. 5 s
    /// for what passes as soon as load or the database does (a provider retries within
    /// its own schedule anyway); 30 s for a provider's signing certificate that could not
    /// be fetched, whose server is not ours to wait on closely.
    fn retry_after(&self) -> Option<&'static str> {
        match self {
            ApiError::Unavailable
            | ApiError::ExportsBusy(_)
            | ApiError::UnverifiedBodiesBusy
            | ApiError::DeadlineExceeded(_) => Some("5"),
            ApiError::ProviderCheckUnavailable(_) => Some("30"),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "message": self.to_string() })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if let ApiError::Unauthorized = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bounceops\""),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::error_throttled!(error = %e, "database error");
        if crate::store::is_unavailable(&e) {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Database(e) => e.into(),
            IngestError::Unavailable(why) => {
                crate::error_throttled!(error = %why, "database unavailable");
                ApiError::Unavailable
            }
            IngestError::Closed => ApiError::Unavailable,
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}
