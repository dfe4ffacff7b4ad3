//! Exports cannot starve ingest: over real HTTP on loopback against a real Postgres, export
//! clients that read slowly (or not at all) hold only the export's own connections, extra
//! exports get 503 with `Retry-After`, and a stalled export is cut so its connection returns.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bounce_worker::store::ExportLimits;
use common::{TOKEN, TestDb, TestWorker, USER, metric_value};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Rows of about 300 bytes: the CSV (some 30 MB) is far more than every buffer between
/// Postgres and a client that does not read (socket buffers, the worker's channel), so the
/// worker keeps waiting on such a client instead of finishing the query.
const ROWS: i64 = 100_000;

async fn seeded_db() -> TestDb {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("big@example.com").await;
    sqlx::query(
        "INSERT INTO bounces (subscriber_id, type, source, meta)
         SELECT $1, 'soft', 'bulk', jsonb_build_object('i', i, 'pad', repeat('x', 200))
         FROM generate_series(1, $2) i",
    )
    .bind(id)
    .bind(ROWS)
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

/// An export request on a raw socket with a tiny receive buffer, read up to the end of the
/// answer's head: past it, the client decides how fast (if at all) the body is read.
struct ExportClient {
    status: u16,
    head: String,
    stream: TcpStream,
}

async fn open_export(addr: SocketAddr) -> ExportClient {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /api/bounces/export?format=csv HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: token {USER}:{TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("the answer's head");
        head.push(byte);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    ExportClient {
        status,
        head,
        stream,
    }
}

impl ExportClient {
    /// The body of a short answer (one with a content-length, as errors have).
    async fn small_body(&mut self) -> String {
        let length: usize = self
            .head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }
}

/// Reads a few bytes every 100 ms, forever: a client on a very slow link.
fn trickle(mut stream: TcpStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 16];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Connections of the worker in the middle of an export (their last statement a COPY).
async fn exports_in_progress(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'bounce-worker'
           AND query LIKE 'COPY%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Polls `exports_in_progress` until it is `expected`, failing after `within`.
async fn wait_for_exports_in_progress(db: &TestDb, expected: i64, within: Duration) {
    let started = Instant::now();
    loop {
        let now = exports_in_progress(db).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{now} exports in progress after {within:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Twenty export clients on slow links: two stream (the export's connections), eighteen get
/// 503, and 200 webhooks meanwhile are each answered and committed within 2 s. Before the
/// export had connections of its own, the slow readers held 16 of the shared pool's 16 and
/// every webhook got 503 after the 3 s acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_slow_exports_leave_ingest_at_full_speed() {
    let db = seeded_db().await;
    let (hook, _) = db.subscriber("hook@example.com").await;
    // Every webhook's bounce is stored (listmonk stops past the threshold), so that the
    // count shows each was committed. Slow readers are not cut off while the test runs;
    // otherwise the export limits are the defaults.
    let rules = "  rules: {recordAfterThreshold: true}\n";
    let w = TestWorker::start_with(&db.url, rules, |s| {
        s.tuning.export.stall = Duration::from_secs(300);
    })
    .await;
    assert_eq!(ExportLimits::default().connections, 2);

    let clients = futures::future::join_all((0..20).map(|_| open_export(w.addr))).await;
    let (streaming, mut refused): (Vec<_>, Vec<_>) =
        clients.into_iter().partition(|c| c.status == 200);
    let readers: Vec<_> = streaming.into_iter().map(|c| trickle(c.stream)).collect();
    wait_for_exports_in_progress(&db, readers.len() as i64, Duration::from_secs(10)).await;

    // While the slow readers hold their exports, ingest answers as fast as ever: no webhook
    // waits for a connection (the pool's acquire timeout is 3 s).
    let answers: Vec<(Result<u16, reqwest::Error>, Duration)> = futures::stream::iter(0..200)
        .map(|i| {
            let w = &w;
            async move {
                let started = Instant::now();
                let answer = w
                    .client
                    .post(w.url("/webhooks/bounce"))
                    .header("Authorization", w.auth())
                    .json(&json!({
                        "email": "hook@example.com", "type": "soft", "source": "slow-export",
                        "meta": {"n": i}
                    }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                (answer.map(|r| r.status().as_u16()), started.elapsed())
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    for (status, took) in &answers {
        assert!(
            matches!(status, Ok(200)),
            "a webhook answered {status:?} after {took:?}"
        );
        assert!(*took < Duration::from_secs(2), "a webhook took {took:?}");
    }
    assert_eq!(db.bounce_count(hook).await, 200);

    // The readers held their exports all along; the exports past the limit were refused.
    assert_eq!(exports_in_progress(&db).await, readers.len() as i64);
    assert_eq!(readers.len(), 2, "exports streaming at once");
    assert_eq!(refused.len(), 18);
    for c in &mut refused {
        assert_eq!(c.status, 503, "{}", c.head);
        assert!(c.head.contains("\r\nretry-after: 5\r\n"), "{}", c.head);
        let message = c.small_body().await;
        assert!(
            message.contains("export connections are in use"),
            "{message}"
        );
    }
    let metrics = w.metrics().await;
    assert_eq!(
        metric_value(&metrics, "bounceops_exports_refused_total"),
        18.0
    );
    for r in readers {
        r.abort();
    }
}

/// A client that stops reading is cut off after the stall timeout: its export's connection
/// is closed (the COPY ends), the next export gets the slot, and the stalled client, should
/// it read on, finds a body that ends broken rather than one that looks complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_export_is_cut_off_and_its_connection_comes_back() {
    let db = seeded_db().await;
    let w = TestWorker::start_with(&db.url, "", |s| {
        s.tuning.export = ExportLimits {
            connections: 1,
            wait: Duration::from_millis(200),
            stall: Duration::from_secs(1),
            deadline: Duration::from_secs(600),
        };
    })
    .await;

    let mut stalled = open_export(w.addr).await;
    assert_eq!(stalled.status, 200, "{}", stalled.head);
    wait_for_exports_in_progress(&db, 1, Duration::from_secs(10)).await;
    // The client holds its socket open and reads nothing: the export ends anyway.
    wait_for_exports_in_progress(&db, 0, Duration::from_secs(15)).await;

    let (status, body) = w.get_text("/api/bounces/export?format=csv").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().count() as i64, ROWS + 1);

    let mut rest = Vec::new();
    let _ = stalled.stream.read_to_end(&mut rest).await; // ends with EOF or a reset
    assert!(
        !rest.ends_with(b"\r\n0\r\n\r\n"),
        "the cut-off body ended like a complete one"
    );
    let lines = rest.iter().filter(|b| **b == b'\n').count() as i64;
    assert!(lines < ROWS, "{lines} lines arrived of a cut-off export");
}
