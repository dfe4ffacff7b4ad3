//! `GET /api/unmatched` and `GET /api/ignored`: the bounces kept in the worker's own tables
//! (`store::kept`), reachable until `spec.retention` purges them. Paged and answered as
//! `GET /api/bounces` is, so that one script reads all three.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};

use super::bounces::Params;
use super::error::ApiError;
use super::paging::Paging;
use super::{AppState, Authenticated};
use crate::store::kept::{self, ListQuery, Table};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/unmatched", get(unmatched))
        .route("/api/ignored", get(ignored))
}

async fn unmatched(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    list(&app, Table::Unmatched, raw).await
}

async fn ignored(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    list(&app, Table::Ignored, raw).await
}

/// `email`, `source` and `reason` filter; `order=asc` lists the oldest first; `page` and
/// `per_page` as listmonk reads them.
async fn list(
    app: &AppState,
    table: Table,
    raw: Option<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = Params::new(raw);
    let paging = Paging::parse(p.first("page"), p.first("per_page"))?;
    let query = ListQuery {
        email: storable(&p, "email")?,
        source: storable(&p, "source")?,
        reason: p.reason()?,
        ascending: p.first("order") == Some("asc"),
        limit: paging.limit(),
        offset: paging.offset,
    };
    let found = kept::list(&app.store, table, &query).await?;
    Ok(Json(paging.answer(found.results, found.total)))
}

/// A text filter, refused when Postgres could not even compare it: a NUL character, which
/// no stored text holds.
fn storable(p: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match p.get(key) {
        Some(v) if v.contains('\0') => Err(ApiError::BadRequest(format!(
            "invalid {key}: contains a NUL character"
        ))),
        v => Ok(v.map(str::to_owned)),
    }
}
