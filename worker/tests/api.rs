//! listmonk's bounce API and the streaming export, over HTTP against a real Postgres.

mod common;

use common::{TestDb, TestWorker};
use serde_json::{Value, json};

/// Three subscribers, two campaigns, seven bounces with known times and sources.
async fn seeded() -> (TestDb, TestWorker, Vec<i32>) {
    let db = TestDb::new().await;
    let (a, _) = db.subscriber("ann@example.com").await;
    let (b, _) = db.subscriber("bob@example.com").await;
    let (c, _) = db.subscriber("cat@example.com").await;
    let (camp1, _) = db.campaign("Alpha").await;
    let (camp2, _) = db.campaign("Beta").await;
    let rows: &[(i32, Option<i32>, &str, &str, &str)] = &[
        (a, Some(camp1), "hard", "ses", "2026-01-01T00:00:00Z"),
        (b, Some(camp2), "soft", "api", "2026-01-02T00:00:00Z"),
        (b, None, "soft", "api", "2026-01-03T00:00:00Z"),
        (
            c,
            Some(camp1),
            "complaint",
            "sendgrid",
            "2026-01-04T00:00:00Z",
        ),
        (a, Some(camp2), "soft", "ses", "2026-01-05T00:00:00Z"),
        (c, None, "hard", "api", "2026-01-06T00:00:00Z"),
        (b, Some(camp1), "hard", "ses", "2026-01-07T00:00:00Z"),
    ];
    let mut ids = Vec::new();
    for (sub, camp, t, source, at) in rows {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO bounces (subscriber_id, campaign_id, type, source, meta, created_at)
             VALUES ($1, $2, $3::bounce_type, $4, $5, $6::timestamptz) RETURNING id",
        )
        .bind(sub)
        .bind(camp)
        .bind(t)
        .bind(source)
        .bind(json!({"n": ids.len()}))
        .bind(at)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let w = TestWorker::start(&db.url, "").await;
    (db, w, ids)
}

/// The `id` of one NDJSON line.
fn line_id(line: &str) -> i64 {
    serde_json::from_str::<Value>(line).unwrap()["id"]
        .as_i64()
        .unwrap()
}

fn ids_of(body: &Value) -> Vec<i64> {
    body["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn list_has_listmonks_shape() {
    let (db, w, ids) = seeded().await;
    let (status, body) = w.get_json("/api/bounces").await;
    assert_eq!(status, 200);
    let data = &body["data"];
    assert_eq!(data["total"], 7);
    assert_eq!(data["page"], 1);
    assert_eq!(data["per_page"], 20);
    assert_eq!(data["search"], "");
    assert_eq!(data["query"], "");
    // Default order: newest first.
    let first = &data["results"][0];
    assert_eq!(first["id"], ids[6]);
    let keys: std::collections::BTreeSet<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: std::collections::BTreeSet<&str> = [
        "id",
        "type",
        "source",
        "meta",
        "created_at",
        "email",
        "subscriber_uuid",
        "subscriber_id",
        "subscriber_status",
        "campaign",
    ]
    .into();
    assert_eq!(keys, want);
    assert_eq!(first["email"], "bob@example.com");
    assert_eq!(first["type"], "hard");
    assert_eq!(first["campaign"]["name"], "Alpha");
    assert_eq!(first["meta"], json!({"n": 6}));
    assert_eq!(first["subscriber_status"], "enabled");
    // A bounce without a campaign has campaign: null.
    let (_, one) = w.get_json(&format!("/api/bounces/{}", ids[2])).await;
    assert_eq!(one["data"]["campaign"], Value::Null);
    assert_eq!(one["data"]["id"], ids[2]);
    drop(db);
}

#[tokio::test]
async fn pagination_ordering_and_filters() {
    let (_db, w, ids) = seeded().await;
    let (_, p1) = w
        .get_json("/api/bounces?order_by=created_at&order=asc&per_page=3&page=1")
        .await;
    let (_, p2) = w
        .get_json("/api/bounces?order_by=created_at&order=asc&per_page=3&page=2")
        .await;
    let (_, p3) = w
        .get_json("/api/bounces?order_by=created_at&order=asc&per_page=3&page=3")
        .await;
    let all: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    assert_eq!(ids_of(&p1), all[0..3]);
    assert_eq!(ids_of(&p2), all[3..6]);
    assert_eq!(ids_of(&p3), all[6..7]);
    assert_eq!(p2["data"]["total"], 7);
    assert_eq!(p2["data"]["page"], 2);
    assert_eq!(p2["data"]["per_page"], 3);

    let (_, everything) = w.get_json("/api/bounces?per_page=all&order=asc").await;
    assert_eq!(ids_of(&everything), all);
    assert_eq!(everything["data"]["per_page"], 0);

    let (_, by_email) = w
        .get_json("/api/bounces?per_page=all&order_by=email&order=asc")
        .await;
    let emails: Vec<&str> = by_email["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);

    let (_, by_type) = w
        .get_json("/api/bounces?per_page=all&order_by=type&order=desc")
        .await;
    let types: Vec<&str> = by_type["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    // The enum's order is soft < hard < complaint.
    assert_eq!(types[0], "complaint");
    assert_eq!(*types.last().unwrap(), "soft");

    let (_, by_campaign) = w
        .get_json("/api/bounces?per_page=all&order_by=campaign_name&order=asc")
        .await;
    let names: Vec<Value> = by_campaign["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["campaign"]["name"].clone())
        .collect();
    assert_eq!(names[0], "Alpha");
    assert_eq!(names[6], Value::Null, "no campaign sorts last");

    let (_, ses) = w
        .get_json("/api/bounces?source=ses&per_page=all&order=asc")
        .await;
    assert_eq!(ids_of(&ses), vec![all[0], all[4], all[6]]);
    assert_eq!(ses["data"]["total"], 3);

    let camp: i64 = ses["data"]["results"][0]["campaign"]["id"]
        .as_i64()
        .unwrap();
    let (_, alpha) = w
        .get_json(&format!(
            "/api/bounces?campaign_id={camp}&per_page=all&order=asc"
        ))
        .await;
    assert_eq!(ids_of(&alpha), vec![all[0], all[3], all[6]]);

    for bad in [
        "order_by=name",
        "order=sideways",
        "page=x",
        "per_page=-",
        "campaign_id=abc",
    ] {
        let (status, body) = w.get_json(&format!("/api/bounces?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["message"].is_string(), "{bad}");
    }
}

#[tokio::test]
async fn get_and_delete() {
    let (db, w, ids) = seeded().await;
    let (status, _) = w.get_json("/api/bounces/999999").await;
    assert_eq!(status, 404);
    let (status, _) = w.get_json("/api/bounces/abc").await;
    assert_eq!(status, 400);

    let del = |path: String| {
        w.client
            .delete(w.url(&path))
            .header("Authorization", w.auth())
            .send()
    };
    let r = del(format!("/api/bounces/{}", ids[0])).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"data": true}));
    assert_eq!(db.total_bounces().await, 6);

    let r = del(format!("/api/bounces?id={}&id={}", ids[1], ids[2]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(db.total_bounces().await, 4);

    assert_eq!(del("/api/bounces".into()).await.unwrap().status(), 400);
    assert_eq!(del("/api/bounces?id=x".into()).await.unwrap().status(), 400);
    assert_eq!(db.total_bounces().await, 4);

    // Per subscriber: cat has two bounces left (ids 3 and 5).
    let cat: i32 = sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'cat@example.com'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (status, body) = w.get_json(&format!("/api/subscribers/{cat}/bounces")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, _) = w.get_json("/api/subscribers/999999/bounces").await;
    assert_eq!(status, 404);
    assert_eq!(
        del(format!("/api/subscribers/{cat}/bounces"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(db.bounce_count(cat).await, 0);
    assert_eq!(db.total_bounces().await, 2);

    assert_eq!(
        del("/api/bounces?all=true".into()).await.unwrap().status(),
        200
    );
    assert_eq!(db.total_bounces().await, 0);
}

#[tokio::test]
async fn csv_export_quotes_and_filters() {
    let (db, w, ids) = seeded().await;
    // A source and meta full of CSV's special characters.
    let tricky_source = "a,b \"quoted\"\nnext line";
    sqlx::query("UPDATE bounces SET source = $1, meta = $2 WHERE id = $3")
        .bind(tricky_source)
        .bind(json!({"diag": "550, \"no\"\r\nsuch user"}))
        .bind(ids[3])
        .execute(&db.pool)
        .await
        .unwrap();
    let r = w
        .client
        .get(w.url("/api/bounces/export?format=csv"))
        .header("Authorization", w.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headers,
        [
            "id",
            "type",
            "source",
            "email",
            "subscriber_uuid",
            "subscriber_id",
            "subscriber_status",
            "campaign_id",
            "campaign_name",
            "created_at",
            "meta",
            "reason",
            "status",
            "diagnostic"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    let tricky = rows.iter().find(|r| r[0] == ids[3].to_string()).unwrap();
    assert_eq!(&tricky[2], tricky_source);
    let meta: Value = serde_json::from_str(&tricky[10]).unwrap();
    assert_eq!(meta["diag"], "550, \"no\"\r\nsuch user");
    assert_eq!(&tricky[1], "complaint");
    assert_eq!(&tricky[3], "cat@example.com");
    assert_eq!(&rows[0][9], "2026-01-01T00:00:00+00:00");
    assert!(!rows[1][7].is_empty(), "campaign_id present");
    assert_eq!(&rows[1][8], "Beta");
    assert_eq!(&rows[2][7], "", "no campaign: empty");

    let (status, filtered) = w
        .get_text("/api/bounces/export?format=csv&type=hard&since=2026-01-02T00:00:00Z&until=2026-01-07T00:00:00Z")
        .await;
    assert_eq!(status, 200);
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(filtered.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "only the hard bounce of Jan 6 is in [Jan 2, Jan 7)"
    );
    assert_eq!(&rows[0][0], ids[5].to_string());
}

#[tokio::test]
async fn ndjson_export_is_one_object_per_line() {
    let (db, w, ids) = seeded().await;
    sqlx::query("UPDATE bounces SET meta = $1 WHERE id = $2")
        .bind(json!({"text": "line1\nline2 \\ \"q\" \u{1} tab\t"}))
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    let r = w
        .client
        .get(w.url("/api/bounces/export?format=ndjson&source=ses"))
        .header("Authorization", w.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], ids[0]);
    assert_eq!(
        lines[0]["meta"]["text"],
        "line1\nline2 \\ \"q\" \u{1} tab\t"
    );
    assert_eq!(lines[0]["campaign"]["name"], "Alpha");
    assert_eq!(lines[0]["email"], "ann@example.com");
    assert!(lines.iter().all(|l| l["source"] == "ses"));
    // Compact JSON: no space outside strings (Postgres writes `"id" : 1`).
    for line in body.lines() {
        assert!(
            line.starts_with(&format!("{{\"id\":{},", line_id(line))),
            "{line}"
        );
        assert!(!line.contains("\" : ") && !line.contains(", \""), "{line}");
    }
    assert!(
        body.contains(r#""meta":{"text":"line1\nline2 \\ \"q\" \u0001 tab\t"}"#),
        "{body}"
    );

    let (status, _) = w.get_text("/api/bounces/export?format=xml").await;
    assert_eq!(status, 400);
    let (status, _) = w.get_text("/api/bounces/export?type=purple").await;
    assert_eq!(status, 400);
    let (status, _) = w.get_text("/api/bounces/export?since=yesterday").await;
    assert_eq!(status, 400);
}

/// The export streams: a body far larger than the channel between Postgres and the socket
/// arrives whole, and an abandoned download does not break the worker.
#[tokio::test]
async fn large_export_streams_and_abandoned_downloads_are_harmless() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("big@example.com").await;
    sqlx::query(
        "INSERT INTO bounces (subscriber_id, type, source, meta)
         SELECT $1, 'soft', 'bulk', jsonb_build_object('i', i) FROM generate_series(1, 50000) i",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    let w = TestWorker::start(&db.url, "").await;
    let (status, body) = w.get_text("/api/bounces/export?format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 50_001);

    for _ in 0..3 {
        let mut r = w
            .client
            .get(w.url("/api/bounces/export?format=ndjson"))
            .header("Authorization", w.auth())
            .send()
            .await
            .unwrap();
        let _first = r.chunk().await.unwrap();
        drop(r); // walk away mid-download
    }
    let (status, body) = w.get_text("/api/bounces/export?format=ndjson").await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 50_000);
}

/// Why it bounced, from the webhook to the API and the export: `meta.reason` is a column and
/// a filter; an unknown name is refused rather than matching nothing.
#[tokio::test]
async fn reasons_are_columns_and_filters() {
    let db = TestDb::new().await;
    for email in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        db.subscriber(email).await;
    }
    let w = TestWorker::start(&db.url, "").await;
    let blocked =
        "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org";
    for body in [
        json!({"email": "ann@example.com", "type": "hard", "source": "mta",
               "meta": {"reason": "blocked", "status": "5.7.1", "diagnostic": blocked}}),
        json!({"email": "bob@example.com", "type": "soft", "source": "mta",
               "meta": {"reason": "mailboxfull", "status": "4.2.2"}}),
        json!({"email": "cat@example.com", "type": "hard", "source": "mta"}),
    ] {
        assert_eq!(w.post_bounce(&body).await.status(), 200);
    }

    let (status, body) = w.get_json("/api/bounces?reason=blocked").await;
    assert_eq!(status, 200);
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{body}");
    assert_eq!(results[0]["email"], "ann@example.com");
    assert_eq!(results[0]["meta"]["diagnostic"], blocked);
    assert_eq!(body["data"]["total"], 1);
    let (status, body) = w.get_json("/api/bounces?reason=userunknown").await;
    assert_eq!((status, &body["data"]["total"]), (200, &json!(0)));
    let (status, body) = w.get_json("/api/bounces?reason=Blocked").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("invalid reason"));

    let (status, csv_text) = w.get_text("/api/bounces/export?format=csv").await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let by_email = |email: &str| rows.iter().find(|r| &r[column("email")] == email).unwrap();
    let ann = by_email("ann@example.com");
    assert_eq!(&ann[column("reason")], "blocked");
    assert_eq!(&ann[column("status")], "5.7.1");
    assert_eq!(&ann[column("diagnostic")], blocked);
    let bob = by_email("bob@example.com");
    assert_eq!(&bob[column("reason")], "mailboxfull");
    assert_eq!(&bob[column("diagnostic")], "", "no diagnostic: empty");
    assert_eq!(&by_email("cat@example.com")[column("reason")], "");

    let (status, ndjson) = w
        .get_text("/api/bounces/export?format=ndjson&reason=mailboxfull")
        .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["email"], "bob@example.com");
    assert_eq!(lines[0]["reason"], "mailboxfull");
    assert_eq!(lines[0]["status"], "4.2.2");
    assert_eq!(lines[0]["diagnostic"], Value::Null);
    let (status, _) = w.get_text("/api/bounces/export?reason=nope").await;
    assert_eq!(status, 400);
}

/// OWASP's advice against CSV injection: a free-text cell that begins with `=`, `+`, `-`,
/// `@`, TAB or CR gets a leading `'`, unless `raw=true` asks for the cells as stored.
#[tokio::test]
async fn csv_cells_that_would_start_a_formula_are_neutralised_unless_raw() {
    let (db, w, ids) = seeded().await;
    let (camp, _) = db.campaign("@SUM(A1:A9)").await;
    sqlx::query("UPDATE bounces SET source = $2, campaign_id = $3, meta = $4 WHERE id = $1")
        .bind(ids[0])
        .bind("=HYPERLINK(\"http://x\")")
        .bind(camp)
        .bind(json!({"diagnostic": "+1 cmd|calc", "status": "\tx", "reason": "\rr"}))
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE subscribers SET email = '-2+3@example.com' WHERE email = 'ann@example.com'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let row_of = |body: &str| {
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        reader
            .records()
            .map(Result::unwrap)
            .find(|r| r[0] == ids[0].to_string())
            .unwrap()
    };
    let (status, body) = w.get_text("/api/bounces/export?format=csv").await;
    assert_eq!(status, 200);
    let row = row_of(&body);
    assert_eq!(&row[2], "'=HYPERLINK(\"http://x\")", "source");
    assert_eq!(&row[3], "'-2+3@example.com", "email");
    assert_eq!(&row[8], "'@SUM(A1:A9)", "campaign_name");
    assert_eq!(&row[11], "'\rr", "reason");
    assert_eq!(&row[12], "'\tx", "status");
    assert_eq!(&row[13], "'+1 cmd|calc", "diagnostic");
    // meta is JSON text (it starts with `{`), left as stored; other rows are untouched.
    assert!(row[10].starts_with('{'), "{}", &row[10]);
    assert!(!body.contains(",'ses,") && body.contains(",ses,"), "{body}");

    let (status, raw) = w.get_text("/api/bounces/export?format=csv&raw=true").await;
    assert_eq!(status, 200);
    let row = row_of(&raw);
    assert_eq!(&row[2], "=HYPERLINK(\"http://x\")");
    assert_eq!(&row[3], "-2+3@example.com");
    assert_eq!(&row[8], "@SUM(A1:A9)");
    assert_eq!(&row[13], "+1 cmd|calc");
    let (status, same) = w.get_text("/api/bounces/export?format=csv&raw=false").await;
    assert_eq!((status, same), (200, body));
    let (status, body) = w.get_json("/api/bounces/export?raw=yes").await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "invalid raw \"yes\": true or false");
}

/// Values the database would refuse are the caller's mistake: 400 naming the field, never
/// a 500.
#[tokio::test]
async fn out_of_range_query_values_are_400_naming_the_field() {
    let (_db, w, _) = seeded().await;
    let cases = [
        (
            "/api/bounces?page=9223372036854775807",
            "invalid page: 9223372036854775807 is past any possible page",
        ),
        ("/api/bounces?page=4611686018427387904&per_page=all", ""),
        (
            "/api/bounces?source=%00",
            "invalid source: contains a NUL character",
        ),
        (
            "/api/bounces/export?source=a%00b",
            "invalid source: contains a NUL character",
        ),
        (
            "/api/bounces/export?since=0000-01-01T00:00:00Z",
            "invalid since: out of range (years 0001 to 9999, in UTC)",
        ),
        (
            "/api/bounces/export?until=0001-01-01T00:00:00%2B01:00",
            "invalid until: out of range (years 0001 to 9999, in UTC)",
        ),
        (
            "/api/bounces/export?until=9999-12-31T23:00:00-05:00",
            "invalid until: out of range (years 0001 to 9999, in UTC)",
        ),
    ];
    for (path, message) in cases {
        let (status, body) = w.get_json(path).await;
        match message {
            // per_page=all has no offset: a page number beyond is page 1.
            "" => assert_eq!(status, 200, "{path}: {body}"),
            _ => {
                assert_eq!(status, 400, "{path}: {body}");
                assert_eq!(body["message"], message, "{path}");
            }
        }
    }
    let (status, _) = w
        .get_text("/api/bounces/export?since=0001-01-01T00:00:00Z&until=9999-12-31T00:00:00Z")
        .await;
    assert_eq!(status, 200, "the first and last years are fine");
}
