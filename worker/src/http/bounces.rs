//! listmonk's bounce API (`/api/bounces`, `/api/subscribers/{id}/bounces`) and the
//! streaming export (`/api/bounces/export`).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::error::ApiError;
use super::paging::{self, Paging};
use super::{AppState, Authenticated};
use crate::event::BounceType;
use crate::store::bounces::{self, ListQuery, OrderBy, Selection};
use crate::store::export;

/// The most bounces `GET /api/subscribers/{id}/bounces` lists: listmonk's
/// `GetSubscriberBounces` asks `QueryBounces` for 1000.
const SUBSCRIBER_BOUNCES: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/bounces", get(list).delete(delete_many))
        .route("/api/bounces/export", get(export))
        .route("/api/bounces/{id}", get(get_one).delete(delete_one))
        .route(
            "/api/subscribers/{id}/bounces",
            get(subscriber_bounces).delete(delete_subscriber_bounces),
        )
}

/// Query parameters in order, repeated keys kept (`?id=1&id=2`).
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn new(raw: Option<String>) -> Params {
        Params(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`, empty or not, as Go's `url.Values.Get` (and so listmonk)
    /// takes it.
    pub(super) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid {key}: {v:?}")))
            })
            .transpose()
    }

    /// A reason name from the vocabulary (docs/reasons.md): a misspelt one would silently
    /// match nothing.
    pub(super) fn reason(&self) -> Result<Option<String>, ApiError> {
        self.get("reason")
            .map(|r| {
                bounce_classify::Reason::from_name(r)
                    .map(|r| r.as_str().to_owned())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "invalid reason {r:?}: one of the names in docs/reasons.md"
                        ))
                    })
            })
            .transpose()
    }

    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::BadRequest(format!("invalid {key}: not RFC 3339")))
            })
            .transpose()
    }
}

/// An id in the path or query of listmonk's bounce routes, read as listmonk's `hasID` and
/// `parseStringIDs` read it: a number of at least 1, else 400.
fn listmonk_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid id: {id:?}")))
}

/// A bounce id of our own routes (`/api/bounces/{id}/message`): listmonk's reading, within
/// the 32-bit ids of listmonk's `bounces`.
pub(super) fn id_path(id: &str) -> Result<i32, ApiError> {
    listmonk_id(id).and_then(|n| {
        i32::try_from(n).map_err(|_| ApiError::BadRequest(format!("invalid id: {id:?}")))
    })
}

/// `GET /api/bounces`, as listmonk's `GetBounces` (`cmd/bounce.go`) and `QueryBounces`
/// (`internal/core/bounces.go`) answer it: a parameter listmonk would not understand falls
/// back to its default rather than being refused (`docs/listmonk.md`).
async fn list(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = Params::new(raw);
    let paging = Paging::parse(p.first("page"), p.first("per_page"))?;
    let query = ListQuery {
        // campaign_id 0 (or not a number) is no filter, as listmonk's `$2 = 0`.
        campaign_id: p
            .first("campaign_id")
            .map(paging::atoi)
            .filter(|id| *id != 0),
        source: p
            .first("source")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        reason: p.reason()?,
        order_by: p
            .first("order_by")
            .and_then(OrderBy::parse)
            .unwrap_or_default(),
        // Only the exact `asc` ascends: listmonk compares with `SortAsc` ("asc").
        descending: p.first("order") != Some("asc"),
        limit: paging.limit(),
        offset: paging.offset,
        ..Default::default()
    };
    let found = bounces::list(&app.store, &query).await?;
    Ok(Json(paging.answer(found.results, found.total)))
}

async fn get_one(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = listmonk_id(&id)?;
    // listmonk's `GetBounce` answers an unknown id 400, not 404.
    let record = bounces::get(&app.store, id)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("bounce {id} not found")))?;
    Ok(Json(json!({ "data": record })))
}

async fn delete_one(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = listmonk_id(&id)?;
    bounces::delete(&app.store, Selection::Ids(&[id])).await?;
    Ok(Json(json!({ "data": true })))
}

/// `DELETE /api/bounces?id=..&id=..` or `?all=true`, as listmonk's `DeleteBounces`: `all`
/// is read by Go's `strconv.ParseBool` (`1`, `t`, `TRUE`, ... are true), and when it is
/// true the ids are not looked at.
async fn delete_many(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = Params::new(raw);
    let all = matches!(
        p.first("all"),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    );
    if all {
        bounces::delete(&app.store, Selection::All).await?;
        return Ok(Json(json!({ "data": true })));
    }
    let ids =
        p.0.iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| listmonk_id(v))
            .collect::<Result<Vec<i64>, ApiError>>()?;
    if ids.is_empty() {
        return Err(ApiError::BadRequest(
            "give id=.. (repeatable) or all=true".into(),
        ));
    }
    bounces::delete(&app.store, Selection::Ids(&ids)).await?;
    Ok(Json(json!({ "data": true })))
}

/// `GET /api/subscribers/{id}/bounces`, as listmonk's `GetSubscriberBounces`: the newest
/// 1000, and an empty list (never 404) for a subscriber without bounces or unknown.
async fn subscriber_bounces(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = listmonk_id(&id)?;
    let query = ListQuery {
        subscriber_id: Some(id),
        limit: Some(SUBSCRIBER_BOUNCES),
        ..Default::default()
    };
    let found = bounces::list(&app.store, &query).await?;
    Ok(Json(json!({ "data": found.results })))
}

async fn delete_subscriber_bounces(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = listmonk_id(&id)?;
    bounces::delete(&app.store, Selection::Subscriber(id)).await?;
    Ok(Json(json!({ "data": true })))
}

async fn export(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw);
    let (format, content_type) = match p.get("format").unwrap_or("csv") {
        "csv" => (export::Format::Csv, "text/csv; charset=utf-8"),
        "ndjson" => (export::Format::Ndjson, "application/x-ndjson"),
        f => {
            return Err(ApiError::BadRequest(format!(
                "invalid format {f:?}: csv or ndjson"
            )));
        }
    };
    let filter = export::Filter {
        bounce_type: p
            .get("type")
            .map(|t| {
                BounceType::parse(t)
                    .ok_or_else(|| ApiError::BadRequest(format!("invalid type: {t:?}")))
            })
            .transpose()?,
        source: p.get("source").map(str::to_owned),
        campaign_id: p.number("campaign_id")?,
        reason: p.reason()?,
        since: p.time("since")?,
        until: p.time("until")?,
    };
    let chunks = match export::start(&app.store, filter, format).await {
        Ok(chunks) => chunks,
        Err(export::StartError::Busy(connections)) => {
            app.metrics.exports_refused.inc();
            return Err(ApiError::ExportsBusy(connections));
        }
        Err(export::StartError::Database(e)) => return Err(e.into()),
    };
    let extension = if format == export::Format::Csv {
        "csv"
    } else {
        "ndjson"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"bounces.{extension}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
