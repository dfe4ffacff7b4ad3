//! Fixtures shared by the worker's integration tests: a throwaway database per test, an
//! in-process worker listening on loopback, and a TCP proxy that can cut the database.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod commit_trap;
pub mod fixture_text;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bounce_worker::config::Settings;
use bounce_worker::secrets::SecretsDir;
use bounce_worker::store::{Store, migrate};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const USER: &str = "tester";
pub const TOKEN: &str = "t0ken";

pub fn admin_url() -> String {
    std::env::var("BOUNCEOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("BOUNCEOPS_TEST_DATABASE_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A database created for one test (listmonk-shaped tables and the worker's schema) and
/// dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        TestDb::create("").await
    }

    /// A database whose encoding is LATIN1, which cannot hold most characters: a value
    /// the database refuses, as any database refuses what its encoding lacks.
    pub async fn latin1() -> TestDb {
        TestDb::create(" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0").await
    }

    /// An empty database: neither listmonk's tables nor the worker's schema.
    pub async fn unmigrated() -> TestDb {
        TestDb::create_as("", false).await
    }

    async fn create(options: &str) -> TestDb {
        TestDb::create_as(options, true).await
    }

    async fn create_as(options: &str, migrated: bool) -> TestDb {
        let name = format!("bounceops_t_{}", Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach Postgres at BOUNCEOPS_TEST_DATABASE_URL ({}): {e}; \
                     run the tests through scripts/test.sh",
                    admin_url()
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}{options}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url(), &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect to test database");
        if migrated {
            migrate::run(&pool, true).await.expect("migrate");
        }
        TestDb { name, url, pool }
    }

    pub fn store(&self) -> Store {
        Store::connect_lazy(&self.url, 8).unwrap()
    }

    /// A subscriber on one list (confirmed); returns (id, uuid).
    pub async fn subscriber(&self, email: &str) -> (i32, Uuid) {
        let uuid = Uuid::new_v4();
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO subscribers (uuid, email, name) VALUES ($1, $2, $2) RETURNING id",
        )
        .bind(uuid)
        .bind(email)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let list: i32 = sqlx::query_scalar(
            "INSERT INTO lists (uuid, name, type) VALUES ($1, 'l', 'public') RETURNING id",
        )
        .bind(Uuid::new_v4())
        .fetch_one(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO subscriber_lists (subscriber_id, list_id, status) VALUES ($1, $2, 'confirmed')",
        )
        .bind(id)
        .bind(list)
        .execute(&self.pool)
        .await
        .unwrap();
        (id, uuid)
    }

    /// A campaign; returns (id, uuid).
    pub async fn campaign(&self, name: &str) -> (i32, Uuid) {
        let uuid = Uuid::new_v4();
        let id = sqlx::query_scalar(
            "INSERT INTO campaigns (uuid, name, subject, from_email, body, messenger)
             VALUES ($1, $2, 's', 'f@example.com', 'b', 'email') RETURNING id",
        )
        .bind(uuid)
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (id, uuid)
    }

    pub async fn bounce_count(&self, subscriber_id: i32) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM bounces WHERE subscriber_id = $1")
            .bind(subscriber_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The subscriber's status, or None when it no longer exists.
    pub async fn status(&self, subscriber_id: i32) -> Option<String> {
        sqlx::query_scalar("SELECT status::text FROM subscribers WHERE id = $1")
            .bind(subscriber_id)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    pub async fn list_statuses(&self, subscriber_id: i32) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT status::text FROM subscriber_lists WHERE subscriber_id = $1 ORDER BY list_id",
        )
        .bind(subscriber_id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub async fn unmatched_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.unmatched")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn total_bounces(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM bounces")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Whether a statement in this database comes to wait for a lock of the kind `lock`
    /// (`pg_stat_activity`'s `wait_event`: `advisory`, `transactionid`), polled for up to 5 s.
    pub async fn a_statement_waits_for(&self, lock: &str) -> bool {
        self.statements_wait_for(lock, 1).await
    }

    /// Whether `n` statements at once come to wait for a lock of the kind `lock`, polled
    /// for up to 5 s.
    pub async fn statements_wait_for(&self, lock: &str, n: i64) -> bool {
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND wait_event = $1",
            )
            .bind(lock)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if waiting >= n {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }
}

/// Claims `(source, event_id)` in `tx` as another replica's batch does
/// (`bounceops.claim_batch`, one event, not counted); returns whether it was fresh.
pub async fn claim(tx: &mut sqlx::PgConnection, source: &str, event_id: &str) -> bool {
    let fresh: Option<i64> = sqlx::query_scalar(
        "SELECT event_ord FROM bounceops.claim_batch(
             ARRAY[$1::text], ARRAY[$2::text], ARRAY[NULL::bytea], ARRAY[TRUE], ARRAY[FALSE],
             ARRAY[NULL::uuid], ARRAY[NULL::text], 0, NULL)
         WHERE event_ord IS NOT NULL",
    )
    .bind(source)
    .bind(event_id)
    .fetch_optional(tx)
    .await
    .unwrap();
    fresh.is_some()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url())
                    .await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Writes a BounceConfig and its secrets into `dir`; `extra_spec` is YAML appended under
/// `spec:` (indented by two spaces).
pub fn write_config(
    dir: &Path,
    database_url: &str,
    extra_spec: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(secrets.join("db")).unwrap();
    std::fs::create_dir_all(secrets.join("api")).unwrap();
    std::fs::write(secrets.join("db/url"), format!("{database_url}\n")).unwrap();
    std::fs::write(secrets.join("api/credentials"), format!("{USER}:{TOKEN}\n")).unwrap();
    let config = dir.join("bounceconfig.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: bounceops.io/v1alpha1\nkind: BounceConfig\nmetadata: {{name: t}}\nspec:\n  database: {{urlSecretRef: {{name: db, key: url}}, schema: standalone}}\n  api: {{credentialsSecretRef: {{name: api, key: credentials}}}}\n{extra_spec}"
        ),
    )
    .unwrap();
    (config, secrets)
}

/// A worker serving on a loopback port, stopped when dropped.
pub struct TestWorker {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), bounce_worker::server::ServeError>>>,
    _dir: tempfile::TempDir,
}

impl TestWorker {
    pub async fn start(database_url: &str, extra_spec: &str) -> TestWorker {
        TestWorker::start_with(database_url, extra_spec, |_| {}).await
    }

    /// [`TestWorker::start`], with settings that the environment would give (export
    /// limits, ...) changed by `tune` before the worker starts.
    pub async fn start_with(
        database_url: &str,
        extra_spec: &str,
        tune: impl FnOnce(&mut Settings),
    ) -> TestWorker {
        let dir = tempfile::tempdir().unwrap();
        let (config, secrets) = write_config(dir.path(), database_url, extra_spec);
        let mut settings =
            Settings::load(&config, &SecretsDir::new(secrets), None).expect("config");
        tune(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            bounce_worker::server::serve(&settings, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        TestWorker {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn auth(&self) -> String {
        format!("token {USER}:{TOKEN}")
    }

    /// POSTs a generic webhook body with valid credentials.
    pub async fn post_bounce(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/webhooks/bounce"))
            .header("Authorization", self.auth())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a generic webhook body with valid credentials and an `Idempotency-Key`;
    /// returns the status and the answer's `message` (empty on success).
    pub async fn post_keyed(&self, key: &str, body: &serde_json::Value) -> (u16, String) {
        let r = self
            .client
            .post(self.url("/webhooks/bounce"))
            .header("Authorization", self.auth())
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: serde_json::Value = r.json().await.unwrap_or_default();
        let message = answer["message"].as_str().unwrap_or_default().to_owned();
        (status, message)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .header("Authorization", self.auth())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .header("Authorization", self.auth())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// Stops the worker as SIGTERM would and waits for it to finish.
    pub async fn stop(mut self) -> Result<(), bounce_worker::server::ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap()
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The value of one series (`name{labels}` exactly as exposed) in a `/metrics` text; 0
/// when the series is absent, as Prometheus counts it.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A TCP proxy in front of a server (Postgres, Postfix). `cut()` closes every connection
/// and refuses new ones, as an outage does; `stall()` closes them and lets new ones hang
/// unanswered, as a network partition does (a client waits for its own timeout);
/// `restore()` lets connections through again. When `cut()` or `stall()` returns, the live
/// connections are already shut at the socket: a byte the client writes afterwards cannot
/// reach the server. (Asking each connection's task to stop left a window in which a pooled
/// connection's next command still got through.)
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    live: Arc<std::sync::Mutex<Vec<(u64, std::net::TcpStream)>>>,
}

const OPEN: u8 = 0;
const REFUSE: u8 = 1;
const STALL: u8 = 2;

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let live = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mode2, gen2, live2) = (mode.clone(), generation.clone(), live.clone());
        tokio::spawn(async move {
            let mut next_id = 0u64;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut = gen2.subscribe();
                match mode2.load(Ordering::SeqCst) {
                    REFUSE => drop(client), // refused: closed straight away
                    STALL => {
                        // Held open, never answered, until the next change of mode.
                        tokio::spawn(async move {
                            let _ = cut.changed().await;
                            drop(client);
                        });
                    }
                    _ => {
                        let live = live2.clone();
                        next_id += 1;
                        let id = next_id;
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(target).await else {
                                return;
                            };
                            let (Some(c), Some(s)) = (handle(&client), handle(&server)) else {
                                return;
                            };
                            {
                                // Under the lock `set` takes after changing the mode: either
                                // `set` shuts these, or the change is seen here.
                                let mut live = live.lock().unwrap();
                                if cut.has_changed().unwrap_or(true) {
                                    return;
                                }
                                live.extend([(id, c), (id, s)]);
                            }
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cut.changed() => {}
                            }
                            // The second handles would keep the sockets open past this task.
                            live.lock().unwrap().retain(|(i, _)| *i != id);
                        });
                    }
                }
            }
        });
        Proxy {
            port,
            mode,
            generation,
            live,
        }
    }

    pub fn cut(&self) {
        self.set(REFUSE);
    }

    pub fn stall(&self) {
        self.set(STALL);
    }

    pub fn restore(&self) {
        self.set(OPEN);
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        for (_, socket) in self.live.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}

/// A second handle on a proxied socket, so that `Proxy::set` can shut it from outside the
/// task that copies through it.
fn handle(stream: &TcpStream) -> Option<std::net::TcpStream> {
    let fd = std::os::fd::AsFd::as_fd(stream).try_clone_to_owned().ok()?;
    Some(std::net::TcpStream::from(fd))
}

/// The address of the Postgres server behind `url`.
pub fn server_addr(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", u.port().unwrap_or(5432))
        .parse()
        .unwrap()
}
