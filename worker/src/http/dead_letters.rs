//! `GET /api/dead-letters`: the events the database refused to store, parked so that the
//! rest of their batch was recorded (`store::dead_letters`), newest first. Authenticated
//! like the rest of the API.
//!
//! Query: `source` (only that source's), `page` (from 1), `per_page` (1 to 1000, 20 by
//! default). The answer is shaped like listmonk's lists: `{"data": {"results": [...],
//! "total", "page", "per_page"}}`.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::{AppState, Authenticated};
use crate::store::dead_letters;

const DEFAULT_PER_PAGE: i64 = 20;
const MAX_PER_PAGE: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/dead-letters", get(list))
}

async fn list(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = Query::parse(raw.as_deref().unwrap_or_default())?;
    let (results, total) = dead_letters::list(
        &app.store,
        query.source.as_deref(),
        query.per_page,
        query.offset,
    )
    .await?;
    Ok(Json(json!({
        "data": {
            "results": results,
            "total": total,
            "page": query.page,
            "per_page": query.per_page,
        }
    })))
}

#[derive(Debug, PartialEq)]
struct Query {
    source: Option<String>,
    page: i64,
    per_page: i64,
    offset: i64,
}

impl Query {
    fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut q = Query {
            source: None,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            offset: 0,
        };
        let number = |key: &str, v: &str, max: i64| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("invalid {key}: {v:?}, a number from 1 to {max}"))
                })
        };
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            match k.as_ref() {
                _ if v.is_empty() => {}
                "source" => q.source = Some(v.into_owned()),
                "page" => q.page = number("page", &v, i64::MAX)?,
                "per_page" => q.per_page = number("per_page", &v, MAX_PER_PAGE)?,
                _ => {}
            }
        }
        q.offset = (q.page - 1).checked_mul(q.per_page).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid page: {} is past the last page", q.page))
        })?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_bounds_and_overflow() {
        let q = Query::parse("").unwrap();
        assert_eq!((q.page, q.per_page, q.offset, q.source), (1, 20, 0, None));
        let q = Query::parse("page=3&per_page=50&source=sendgrid").unwrap();
        assert_eq!((q.page, q.per_page, q.offset), (3, 50, 100));
        assert_eq!(q.source.as_deref(), Some("sendgrid"));
        for bad in [
            "page=0",
            "page=-1",
            "page=x",
            "per_page=0",
            "per_page=1001",
            "page=9223372036854775807",
        ] {
            let e = Query::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid page") || e.starts_with("invalid per_page"),
                "{bad}: {e}"
            );
        }
    }
}
