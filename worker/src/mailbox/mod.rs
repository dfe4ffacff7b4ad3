//! Bounce mailboxes (DESIGN §4 "Mailboxes"): resolving `spec.mailboxes` into sessions,
//! the scheduler that scans each mailbox on its own `scanInterval`, and `--once`.
//!
//! - `scan`: one scan and the per-message decision (record, then remove; or keep);
//! - `pop3`, `imap`: the protocol sessions; `net`, `tls`: the streams under them;
//! - the scan lock and the memory of messages left in place are `store::mailbox`;
//! - `metrics`: `bounceops_mailbox_*`;
//! - `parse`: what `bounce-worker parse` prints.

pub mod imap;
pub mod metrics;
pub mod net;
pub mod parse;
pub mod pop3;
pub mod scan;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bounceops_api::{MailboxProtocol, MailboxSpec, Problem, TlsMode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::ingest::{Ingest, IngestError};
use crate::metrics::Metrics;
use crate::secrets::SecretsDir;
use crate::store::Store;

pub use metrics::MailboxMetrics;
pub use scan::{Deps, Summary};

/// Why a scan failed. Each variant is a value of the `result` label of
/// `bounceops_mailbox_scans_total`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// TCP, TLS or STARTTLS failed: the server is unreachable or not who it claims to be.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server refused the login.
    #[error("login refused: {0}")]
    Auth(String),
    /// The server answered a command with an error.
    #[error("the server refused {0}")]
    Rejected(String),
    /// The connection broke, timed out, or the server said something unexpected.
    #[error("session failed: {0}")]
    Protocol(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("recording bounces: {0}")]
    Record(#[from] IngestError),
}

impl ScanError {
    pub fn label(&self) -> &'static str {
        match self {
            ScanError::Connect(_) => "connect_error",
            ScanError::Auth(_) => "auth_error",
            ScanError::Rejected(_) | ScanError::Protocol(_) => "protocol_error",
            ScanError::Database(_) | ScanError::Record(_) => "database_error",
        }
    }
}

/// Why the scanner could not start, or why `run --once` fails: what the mailbox layer hands
/// to `main`. One mailbox's failed scan is a [`ScanError`], logged and counted.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("cannot register the mailbox metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("mailbox scan failed: {}", .0.join(", "))]
    ScansFailed(Vec<String>),
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// One mailbox with its secrets read and its values checked.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub name: String,
    pub protocol: MailboxProtocol,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_skip_verify: bool,
    /// The user name and password of the login.
    pub credentials: (String, Password),
    pub folder: String,
    /// IMAP: where recorded bounces are moved; `None`: they are deleted.
    pub move_to: Option<String>,
    pub scan_interval: Duration,
    pub max_messages_per_scan: usize,
    /// Messages listed larger than this are not downloaded (`maxMessageBytes`).
    pub max_message_bytes: u64,
    /// The mailbox's identity (protocol, user, host, port, folder): the key of its scan
    /// lock, of its kept messages and of its event ids. Two configurations naming the same
    /// mailbox differently still share one lock.
    pub key: String,
}

impl MailboxConfig {
    /// Reads the secrets of `spec.mailboxes[index]`; errors name the field. The spec was
    /// validated with the rest of the configuration (`Settings::load`): what is left to
    /// check is what the secrets hold.
    pub fn resolve(
        spec: &MailboxSpec,
        index: usize,
        secrets: &SecretsDir,
    ) -> Result<MailboxConfig, Problem> {
        let field = |f: &str| format!("spec.mailboxes[{index}].{f}");
        let read = |f: &str, r: &bounceops_api::SecretRef| {
            secrets
                .read_named(r)
                .map_err(|e| Problem::new(field(f), e.to_string()))
        };
        let user = read("usernameSecretRef", &spec.username_secret_ref)?;
        let password = read("passwordSecretRef", &spec.password_secret_ref)?;
        // Either would end the USER/PASS or LOGIN command early and send the rest as
        // another command.
        if user.contains(['\r', '\n', ' ']) {
            return Err(Problem::new(
                field("usernameSecretRef"),
                "the user name contains spaces or line breaks",
            ));
        }
        if password.contains(['\r', '\n']) {
            return Err(Problem::new(
                field("passwordSecretRef"),
                "the password contains line breaks",
            ));
        }
        let scan_interval = bounceops_api::durations::scan_interval(&spec.scan_interval)
            .map_err(|e| Problem::new(field("scanInterval"), e))?;
        let protocol = match spec.protocol {
            MailboxProtocol::Pop3 => "pop3",
            MailboxProtocol::Imap => "imap",
        };
        let folder = match spec.protocol {
            MailboxProtocol::Pop3 => "",
            MailboxProtocol::Imap => spec.folder.as_str(),
        };
        let key = format!("{protocol}://{user}@{}:{}/{folder}", spec.host, spec.port);
        Ok(MailboxConfig {
            name: spec.name.clone(),
            protocol: spec.protocol,
            host: spec.host.clone(),
            port: spec.port,
            tls: spec.tls,
            tls_skip_verify: spec.tls_skip_verify,
            credentials: (user, Password(password)),
            folder: spec.folder.clone(),
            move_to: spec.move_to.clone(),
            scan_interval,
            max_messages_per_scan: spec.max_messages_per_scan as usize,
            max_message_bytes: spec.max_message_bytes,
            key,
        })
    }

    /// Every mailbox of the configuration.
    pub fn resolve_all(
        specs: &[MailboxSpec],
        secrets: &SecretsDir,
    ) -> Result<Vec<MailboxConfig>, Problem> {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| MailboxConfig::resolve(spec, i, secrets))
            .collect()
    }

    /// The `source` of this mailbox's bounces.
    pub fn source(&self) -> String {
        format!("mailbox:{}", self.name)
    }

    #[cfg(test)]
    pub fn for_tests(name: &str) -> MailboxConfig {
        MailboxConfig {
            name: name.into(),
            protocol: MailboxProtocol::Pop3,
            host: "127.0.0.1".into(),
            port: 110,
            tls: TlsMode::None,
            tls_skip_verify: false,
            credentials: ("u".into(), Password::new("p")),
            folder: "INBOX".into(),
            move_to: None,
            scan_interval: Duration::from_secs(60),
            max_messages_per_scan: 10,
            max_message_bytes: bounceops_api::defaults::max_message_bytes(),
            key: format!("pop3://u@127.0.0.1:110/{name}"),
        }
    }
}

/// A message as listed by the server: `id` is stable across sessions (UIDL, or
/// `UIDVALIDITY:UID`); `handle` addresses it within this session; `size` is what the
/// server says it weighs (POP3 `LIST`, IMAP `RFC822.SIZE`).
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub handle: u32,
    pub size: u64,
}

/// One message as downloaded.
#[derive(Debug, PartialEq)]
pub enum Fetched {
    Whole(Vec<u8>),
    /// The server sent more than `maxMessageBytes` although it listed less; reading
    /// stopped there. Nothing of it is kept.
    Oversized,
}

/// Says that a batch's bodies passed its `room` (`Session::fetch`) and `left` of its messages
/// were not kept: one place, so one throttle for both protocols.
fn past_room(held: u64, room: u64, left: usize) {
    crate::warn_throttled!(
        held,
        room,
        left,
        "the server sent more than it listed; the rest of the batch is left for the next scan"
    );
}

/// An open, logged-in mailbox session of either protocol.
pub enum Session {
    Pop3(pop3::Pop3),
    Imap(Box<imap::Imap>),
}

impl Session {
    pub async fn open(cfg: &MailboxConfig) -> Result<Session, ScanError> {
        Ok(match cfg.protocol {
            MailboxProtocol::Pop3 => Session::Pop3(pop3::Pop3::open(cfg).await?),
            MailboxProtocol::Imap => Session::Imap(Box::new(imap::Imap::open(cfg).await?)),
        })
    }

    /// Every message with its size. The answer's size is known only once it is read: the
    /// listing is bounded as POP3's largest (LIST and UIDL at `pop3::LISTING_CAP` each) at
    /// the floor rate (`net::paced`).
    pub async fn list(&mut self) -> Result<Vec<Listed>, ScanError> {
        net::paced("listing the mailbox", 2 * pop3::LISTING_CAP, async {
            match self {
                Session::Pop3(s) => s.list().await,
                Session::Imap(s) => s.list().await,
            }
        })
        .await
    }

    /// The messages `handles`, each bounded by `maxMessageBytes`, and all of them by
    /// `room`: once the bodies held pass it, the rest are not kept (the first always is).
    /// The downloads budget is taken by the sizes the server lists, so without `room` a
    /// server listing less than it sends could make one batch hold its whole count of
    /// `maxMessageBytes`. A message missing from the answer was expunged meanwhile (IMAP),
    /// follows an oversized one (POP3), or came past `room`: it is left in place for the
    /// next scan. The whole batch is bounded by `room` at the floor rate (`net::paced`):
    /// a failed batch keeps its messages in the mailbox for the next scan.
    pub async fn fetch(
        &mut self,
        handles: &[u32],
        room: u64,
    ) -> Result<Vec<(u32, Fetched)>, ScanError> {
        net::paced("fetching a batch", room, async {
            match self {
                Session::Pop3(s) => s.fetch(handles, room).await,
                Session::Imap(s) => s.fetch(handles, room).await,
            }
        })
        .await
    }

    pub async fn remove(&mut self, handles: &[u32]) -> Result<(), ScanError> {
        match self {
            Session::Pop3(s) => s.remove(handles).await,
            Session::Imap(s) => s.remove(handles).await,
        }
    }

    /// Moves messages that are not bounces out of the way, into the `moveTo` folder; returns
    /// false, touching nothing, when there is none (always for POP3).
    pub async fn set_aside(&mut self, handles: &[u32]) -> Result<bool, ScanError> {
        match self {
            Session::Pop3(_) => Ok(false),
            Session::Imap(s) => s.set_aside(handles).await,
        }
    }

    pub async fn finish(self) -> Result<(), ScanError> {
        match self {
            Session::Pop3(s) => s.finish().await,
            Session::Imap(s) => s.finish().await,
        }
    }
}

/// The longest pause after a failed scan before the next attempt.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// The running scanners: one task per mailbox, each on its own interval.
pub struct Scanners {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Scanners {
    /// Starts one task per mailbox; the first scan of each starts at once.
    pub fn start(mailboxes: Vec<MailboxConfig>, deps: Deps) -> Scanners {
        let (stop, stopped) = watch::channel(false);
        let tasks = mailboxes
            .into_iter()
            .map(|mailbox| {
                deps.mailbox_metrics.init(&mailbox.name);
                let deps = deps.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    loop {
                        let ok = log_scan(&mailbox, scan::scan(&mailbox, &deps, &stopped).await);
                        // A failed scan (server or database briefly down) is retried sooner
                        // than a long interval, so bounces do not wait a whole period.
                        let pause = match ok {
                            true => mailbox.scan_interval,
                            false => mailbox.scan_interval.min(RETRY_AFTER_FAILURE),
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped.wait_for(|s| *s) => return,
                        }
                        if *stopped.borrow() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Scanners { stop, tasks }
    }

    /// Asks every scanner to stop after its current batch, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Logs the outcome of one scan; returns whether it succeeded (a skipped scan counts as
/// success: the replica that holds the mailbox is scanning it).
fn log_scan(mailbox: &MailboxConfig, result: Result<Summary, ScanError>) -> bool {
    let name = mailbox.name.as_str();
    match result {
        Ok(s) if s.locked => {
            tracing::info!(
                mailbox = name,
                "another scanner holds this mailbox; skipped"
            );
            true
        }
        Ok(s) => {
            tracing::info!(
                mailbox = name,
                read = s.read,
                removed = s.removed,
                kept = s.kept,
                oversized = s.oversized,
                events = s.events,
                "mailbox scanned"
            );
            true
        }
        Err(e) => {
            tracing::error!(mailbox = name, error = %e, "mailbox scan failed");
            false
        }
    }
}

impl Deps {
    /// Registers the mailbox metrics into `metrics`' registry (once per registry); the
    /// downloads' budget is that of `mailboxes`, the ones this worker scans.
    pub fn new(
        store: Store,
        ingest: Ingest,
        metrics: Metrics,
        mailboxes: &[MailboxConfig],
    ) -> Result<Deps, MailboxError> {
        let mailbox_metrics = MailboxMetrics::register(metrics.registry())?;
        Ok(Deps {
            store,
            ingest,
            metrics,
            mailbox_metrics,
            downloads: scan::downloads_budget(mailboxes),
        })
    }
}

/// `run --once`: scans every mailbox once, all at the same time, and fails when any scan
/// failed. A mailbox held by another scanner counts as done: that scanner is on it.
pub async fn run_once(
    settings: &Settings,
    mailboxes: Vec<MailboxConfig>,
) -> Result<(), MailboxError> {
    let store = Store::connect_lazy(
        &settings.database_url,
        settings.spec.database.max_connections,
    )?;
    let metrics = Metrics::new();
    let ingest = Ingest::start_keeping(
        store.clone(),
        Arc::new(settings.rules.clone()),
        metrics.clone(),
        1,
        (&settings.spec.evidence).into(),
        settings.spec.retention.clone(),
    );
    let deps = Deps::new(store.clone(), ingest, metrics, &mailboxes)?;
    let (_stop, stopped) = watch::channel(false);
    let scans = mailboxes.iter().map(|m| {
        let (deps, stopped) = (&deps, &stopped);
        async move {
            deps.mailbox_metrics.init(&m.name);
            let ok = log_scan(m, scan::scan(m, deps, stopped).await);
            (m.name.clone(), ok)
        }
    });
    let results = futures::future::join_all(scans).await;
    store.close().await;
    let failed: Vec<String> = results
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(MailboxError::ScansFailed(failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, user: &str, password: &str) -> Result<MailboxConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mbox")).unwrap();
        std::fs::write(dir.path().join("mbox/username"), user).unwrap();
        std::fs::write(dir.path().join("mbox/password"), password).unwrap();
        let spec: MailboxSpec = serde_yaml::from_str(&format!(
            "{{name: b, host: 127.0.0.1, port: 143, usernameSecretRef: {{name: mbox, key: username}}, \
             passwordSecretRef: {{name: mbox, key: password}}, {yaml}}}"
        ))
        .unwrap();
        MailboxConfig::resolve(&spec, 0, &SecretsDir::new(dir.path())).map_err(|p| p.to_string())
    }

    #[test]
    fn resolves_the_secrets_and_the_identity() {
        let m = resolve(
            "protocol: imap, folder: Bounces, scanInterval: 1m",
            "bounces",
            "pw",
        )
        .unwrap();
        assert_eq!(m.credentials.0, "bounces");
        assert_eq!(m.credentials.1.expose(), "pw");
        assert_eq!(m.scan_interval, Duration::from_secs(60));
        assert_eq!(m.key, "imap://bounces@127.0.0.1:143/Bounces");
        assert_eq!(m.max_message_bytes, 10 << 20);
        // POP3 has no folders: the folder is not part of its identity.
        let m = resolve("protocol: pop3, folder: Bounces", "bounces", "pw").unwrap();
        assert_eq!(m.key, "pop3://bounces@127.0.0.1:143/");
    }

    #[test]
    fn secrets_that_would_break_the_login_command_are_refused() {
        let err = resolve("protocol: pop3", "a b", "pw").unwrap_err();
        assert!(
            err.starts_with("spec.mailboxes[0].usernameSecretRef: the user name contains"),
            "{err}"
        );
        let err = resolve("protocol: pop3", "bounces", "pw\r\nDELE 1").unwrap_err();
        assert!(
            err.starts_with("spec.mailboxes[0].passwordSecretRef: the password contains"),
            "{err}"
        );
        assert!(!err.contains("DELE"), "the password leaked: {err}");
    }

    /// A server that sends a batch a line now and then, never silent for a minute, fails
    /// the batch once its allowance has passed (the whole batch at the floor rate), and
    /// the messages stay in the mailbox for the next scan.
    #[tokio::test(start_paused = true)]
    async fn a_batch_that_trickles_fails_at_its_allowance() {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let _ = server.write_all(b"+OK\r\n").await;
            loop {
                tokio::time::sleep(Duration::from_secs(50)).await;
                if server.write_all(b"Subject: x\r\n").await.is_err() {
                    return;
                }
            }
        });
        let mut session = Session::Pop3(pop3::Pop3::new(Box::new(client)));
        let started = tokio::time::Instant::now();
        // 100 KB at 16 KiB/s: 6 s, plus a minute.
        let error = session.fetch(&[1], 100_000).await.unwrap_err().to_string();
        assert!(
            error.contains("fetching a batch: not done within 66s"),
            "{error}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(66));
    }
}
