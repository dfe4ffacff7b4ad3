//! The one error type of the HTTP layer, rendered as listmonk renders errors:
//! `{"message": "..."}` with a fitting status code.

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
            ApiError::Unavailable | ApiError::ExportsBusy(_) | ApiError::UnverifiedBodiesBusy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Damaged(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
        match self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"bounceops\""),
                );
            }
            ApiError::Unavailable | ApiError::ExportsBusy(_) | ApiError::UnverifiedBodiesBusy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
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
                tracing::error!(error = %why, "database unavailable");
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
