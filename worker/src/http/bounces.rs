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
use super::{AppState, Authenticated};
use crate::event::BounceType;
use crate::store::bounces::{self, ListQuery, OrderBy, Selection};
use crate::store::export;

const DEFAULT_PER_PAGE: i64 = 20;

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
struct Params(Vec<(String, String)>);

impl Params {
    fn new(raw: Option<String>) -> Params {
        Params(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Free text compared with stored text: Postgres refuses a NUL in any text value, so
    /// one here is the caller's mistake, not a database failure.
    fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.get(key)
            .map(|v| match v.contains('\0') {
                true => Err(ApiError::BadRequest(format!(
                    "invalid {key}: contains a NUL character"
                ))),
                false => Ok(v.to_owned()),
            })
            .transpose()
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
    fn reason(&self) -> Result<Option<String>, ApiError> {
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

    /// An RFC 3339 time in years 0001 to 9999 (in UTC): RFC 3339 writes four-digit years,
    /// and Postgres has no year 0.
    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        use chrono::Datelike as _;
        self.get(key)
            .map(|v| {
                let t = DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::BadRequest(format!("invalid {key}: not RFC 3339")))?;
                match (1..=9999).contains(&t.year()) {
                    true => Ok(t),
                    false => Err(ApiError::BadRequest(format!(
                        "invalid {key}: out of range (years 0001 to 9999, in UTC)"
                    ))),
                }
            })
            .transpose()
    }
}

pub(super) fn id_path(id: &str) -> Result<i32, ApiError> {
    id.parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid id: {id:?}")))
}

async fn list(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = Params::new(raw);
    let order_by = match p.get("order_by") {
        None => OrderBy::default(),
        Some(o) => OrderBy::parse(o)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid order_by: {o:?}")))?,
    };
    let descending = match p.get("order").map(str::to_ascii_lowercase).as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(ApiError::BadRequest(format!("invalid order: {o:?}"))),
    };
    let page = p.number::<i64>("page")?.unwrap_or(1).max(1);
    // listmonk's `per_page=all` returns every row and reports per_page as 0.
    let per_page = match p.get("per_page") {
        Some("all") => None,
        _ => Some(
            p.number::<i64>("per_page")?
                .unwrap_or(DEFAULT_PER_PAGE)
                .clamp(1, 10_000),
        ),
    };
    let offset = match per_page {
        None => 0,
        Some(n) => (page - 1).checked_mul(n).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid page: {page} is past any possible page"))
        })?,
    };
    let query = ListQuery {
        campaign_id: p.number("campaign_id")?,
        source: p.text("source")?,
        reason: p.reason()?,
        order_by,
        descending,
        limit: per_page,
        offset,
        ..Default::default()
    };
    let found = bounces::list(&app.store, &query).await?;
    Ok(Json(json!({
        "data": {
            "results": found.results,
            "search": "",
            "query": "",
            "total": found.total,
            "per_page": per_page.unwrap_or(0),
            "page": if per_page.is_some() { page } else { 1 },
        }
    })))
}

async fn get_one(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id_path(&id)?;
    let record = bounces::get(&app.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bounce {id} not found")))?;
    Ok(Json(json!({ "data": record })))
}

async fn delete_one(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id_path(&id)?;
    bounces::delete(&app.store, Selection::Ids(&[id])).await?;
    Ok(Json(json!({ "data": true })))
}

async fn delete_many(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = Params::new(raw);
    let all = p.get("all") == Some("true");
    let ids =
        p.0.iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| id_path(v))
            .collect::<Result<Vec<i32>, ApiError>>()?;
    let selection = match (all, ids.is_empty()) {
        (true, _) => Selection::All,
        (false, false) => Selection::Ids(&ids),
        (false, true) => {
            return Err(ApiError::BadRequest(
                "give id=.. (repeatable) or all=true".into(),
            ));
        }
    };
    bounces::delete(&app.store, selection).await?;
    Ok(Json(json!({ "data": true })))
}

async fn subscriber_bounces(
    State(app): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id_path(&id)?;
    if !bounces::subscriber_exists(&app.store, id).await? {
        return Err(ApiError::NotFound(format!("subscriber {id} not found")));
    }
    let query = ListQuery {
        subscriber_id: Some(id),
        limit: None,
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
    let id = id_path(&id)?;
    bounces::delete(&app.store, Selection::Subscriber(id)).await?;
    Ok(Json(json!({ "data": true })))
}

async fn export(
    State(app): State<AppState>,
    _: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw);
    // `raw=true`: CSV cells exactly as stored, formula-like ones included (export::Cells).
    let cells = match p.get("raw") {
        None | Some("false") => export::Cells::Neutralised,
        Some("true") => export::Cells::AsStored,
        Some(r) => {
            return Err(ApiError::BadRequest(format!(
                "invalid raw {r:?}: true or false"
            )));
        }
    };
    let (format, content_type, extension) = match p.get("format").unwrap_or("csv") {
        "csv" => (export::Format::Csv(cells), "text/csv; charset=utf-8", "csv"),
        "ndjson" => (export::Format::Ndjson, "application/x-ndjson", "ndjson"),
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
        source: p.text("source")?,
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
