//! Query parameters fuzzed on every route, against a healthy real Postgres: whatever a
//! caller puts in a query (and in a path's id), the answer is never a 5xx. A 5xx tells a
//! sender to retry and an operator that the worker is broken; a wrong query is neither.
//! First every edge value under every name on the routes that read a query, one at a time
//! (random cases alone find a given edge only now and then); then `PROPTEST_CASES` random
//! requests (256 by default).

mod common;

use common::{TestDb, TestWorker};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

/// Every route, as method and path; `{id}` and `{provider}` are filled in by the case.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/bounces"),
    ("DELETE", "/api/bounces"),
    ("GET", "/api/bounces/export"),
    ("GET", "/api/bounces/{id}"),
    ("DELETE", "/api/bounces/{id}"),
    ("GET", "/api/bounces/{id}/message"),
    ("GET", "/api/subscribers/{id}/bounces"),
    ("DELETE", "/api/subscribers/{id}/bounces"),
    ("POST", "/webhooks/bounce"),
    ("POST", "/webhooks/service/{provider}"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// The names the routes read, and a few they do not.
const KEYS: &[&str] = &[
    "page",
    "per_page",
    "order_by",
    "order",
    "campaign_id",
    "source",
    "reason",
    "id",
    "all",
    "format",
    "type",
    "since",
    "until",
    "raw",
    "code",
    "token",
];

/// Values near the edges of what each parameter takes.
const EDGES: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "all",
    "true",
    "2147483647",
    "2147483648",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1e3",
    "NaN",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00.999999999999Z",
    "\0",
    "a\0b",
    "email",
    "campaign_name",
    "ASC",
    "csv",
    "ndjson",
    "hard",
    "blocked",
    "\u{fffd}\u{10ffff}",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(EDGES).prop_map(str::to_owned),
        any::<String>(),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{1,30}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A path segment for `{id}` / `{provider}`: numbers at the edges, or any text.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&["1", "0", "-1", "2147483648", "ses", "azure", "nope"][..])
            .prop_map(str::to_owned),
        any::<String>(),
    ]
}

/// Query text written as it is (`%zz`, `+`, `;`, a lone `=`): the bytes a URI may hold
/// unescaped, which the encoded pairs above never produce.
fn raw_tail() -> impl Strategy<Value = String> {
    proptest::option::of("[A-Za-z0-9%=&+;._~!$'()*,:@/?-]{0,40}")
        .prop_map(Option::unwrap_or_default)
}

#[test]
fn no_query_gives_a_5xx_on_any_route() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (db, w) = runtime.block_on(async {
        let db = TestDb::new().await;
        let (a, _) = db.subscriber("ann@example.com").await;
        db.campaign("Alpha").await;
        let w = TestWorker::start(&db.url, "").await;
        // Some rows to list, export and delete (re-posted as the cases delete them).
        w.post_bounce(&json!({"email": "ann@example.com", "type": "soft", "source": "s"}))
            .await;
        assert_eq!(db.bounce_count(a).await, 1);
        (db, w)
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    // Any method, path and query; the status and the whole body (an export that fails
    // part-way is a failure too).
    let ask = |method: &str, path: &str, query: &str| {
        let url = format!("{}?{query}", w.url(path));
        runtime.block_on(async {
            let request = match method {
                "GET" => w.client.get(&url),
                "DELETE" => w.client.delete(&url),
                _ => w
                    .client
                    .post(&url)
                    .json(&json!({"email": "ann@example.com", "type": "soft", "source": "s"})),
            };
            let response = request
                .header("Authorization", w.auth())
                .send()
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("{method} {url}: body: {e}"))?;
            match status < 500 {
                true => Ok(()),
                false => Err(format!(
                    "{method} {url}: {status} {}",
                    String::from_utf8_lossy(&body)
                )),
            }
        })
    };
    let mut failures = Vec::new();
    for (method, path) in ROUTES.iter().filter(|(_, p)| !p.contains('{')).take(3) {
        for key in KEYS {
            for value in EDGES {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair(key, value)
                    .finish();
                if let Err(e) = ask(method, path, &query) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        proptest::sample::select(ROUTES),
        segment(),
        proptest::collection::vec((key(), value()), 0..5),
        raw_tail(),
    );
    let result = runner.run(&strategy, |((method, template), segment, pairs, tail)| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        let mut query = query.finish();
        if !tail.is_empty() {
            query = format!("{query}&{tail}");
        }
        let segment: String =
            form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>();
        let path = template
            .replace("{id}", &segment)
            .replace("{provider}", &segment);
        ask(method, &path, &query).map_err(TestCaseError::fail)?;
        Ok(())
    });
    runtime.block_on(async move {
        w.stop().await.unwrap();
        drop(db);
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
