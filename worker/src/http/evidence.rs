//! `GET /api/bounces/{id}/message`: what caused a bounce, as it was kept (`crate::evidence`).
//! With `GET /api/subscribers/{id}/bounces` it takes an operator from a blocklisted
//! subscriber to the mail that blocklisted it in two requests.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::bounces::id_path;
use super::error::ApiError;
use super::{AppState, Authenticated};
use crate::evidence::{self, Kind};
use crate::store::evidence as stored;

/// Set (to `true`) when only the first `spec.evidence.maxBytes` of the original were kept.
pub const TRUNCATED: &str = "bounceops-evidence-truncated";
/// The size of the whole original, sent with [`TRUNCATED`].
pub const ORIGINAL_BYTES: &str = "bounceops-evidence-original-bytes";

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/bounces/{id}/message", get(message))
}

async fn message(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_path(&id)?;
    let found = stored::get(&app.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bounce {id} not found")))?;
    let keep_days = app.ingest.evidence().keep_days;
    let Some(kept) = found.evidence else {
        return Err(ApiError::NotFound(missing(id, &found, keep_days)));
    };
    let kind = Kind::from_content_type(&kept.content_type)
        .ok_or_else(|| damaged(id, format!("unknown content type {:?}", kept.content_type)))?;
    let size = u64::try_from(kept.original_bytes).unwrap_or(0);
    let truncated = kept.truncated;
    // Up to `maxBytes` (64 MiB at most) to inflate: not on the async threads.
    let body = tokio::task::spawn_blocking(move || evidence::unpack(&kept.gzip, size, truncated))
        .await
        .map_err(|e| damaged(id, e.to_string()))?
        .map_err(|e| damaged(id, e.to_string()))?;
    let mut response = (
        [
            (header::CONTENT_TYPE, kind.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"bounce-{id}.{}\"", kind.extension()),
            ),
        ],
        body,
    )
        .into_response();
    if truncated {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(TRUNCATED),
            HeaderValue::from_static("true"),
        );
        headers.insert(HeaderName::from_static(ORIGINAL_BYTES), size.into());
    }
    Ok(response)
}

/// Why bounce `id` has nothing kept, as precisely as the row tells.
fn missing(id: i32, found: &stored::Found, keep_days: u32) -> String {
    let lead = format!("bounce {id} has no kept message");
    if keep_days == 0 {
        return format!("{lead}: spec.evidence.keepDays is 0, so none are kept");
    }
    let age = chrono::Utc::now() - found.bounce_created_at;
    if age.num_days() >= i64::from(keep_days) {
        return format!(
            "{lead}: it is from {}, and messages are kept {keep_days} days (spec.evidence.keepDays)",
            found.bounce_created_at.format("%Y-%m-%d")
        );
    }
    format!(
        "{lead} (kept {keep_days} days): it was recorded before messages were kept, or its \
         source ({:?}) sent nothing to keep",
        found.source
    )
}

fn damaged(id: i32, why: String) -> ApiError {
    tracing::error!(bounce = id, error = %why, "kept message cannot be served");
    ApiError::Damaged(format!("bounce {id}: {why}"))
}
