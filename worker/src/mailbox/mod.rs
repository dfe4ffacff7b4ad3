//! Bounce mailboxes (DESIGN §4 "Mailboxes"): resolving `spec.mailboxes` into sessions,
//! the scheduler that scans each mailbox on its own `scanInterval`, and `--once`.
//!
//! - `scan`: one scan and the per-message decision (record, then remove; or keep);
//! - `pop3`, `imap`: the protocol sessions; `net`, `tls`: the streams under them;
//! - `state`: the scan lock and the memory of messages left in place;
//! - `metrics`: `bounceops_mailbox_*`;
//! - `parse`: what `bounce-worker parse` prints.

pub mod imap;
pub mod metrics;
pub mod net;
pub mod parse;
pub mod pop3;
pub mod scan;
pub mod state;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bounceops_api::{MailboxAuth, MailboxProtocol, MailboxSpec, TlsMode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
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
}

impl ScanError {
    pub fn label(&self) -> &'static str {
        match self {
            ScanError::Connect(_) => "connect_error",
            ScanError::Auth(_) => "auth_error",
            ScanError::Rejected(_) | ScanError::Protocol(_) => "protocol_error",
            ScanError::Database(_) => "database_error",
        }
    }
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
    /// `None` for `auth: none`.
    pub credentials: Option<(String, Password)>,
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
    /// Checks `spec.mailboxes[index]` and reads its secrets; errors name the field.
    pub fn resolve(
        spec: &MailboxSpec,
        index: usize,
        secrets: &SecretsDir,
    ) -> Result<MailboxConfig, String> {
        let field = |f: &str| format!("spec.mailboxes[{index}].{f}");
        if spec.name.trim().is_empty() {
            return Err(format!("{}: must not be empty", field("name")));
        }
        if spec.host.trim().is_empty() {
            return Err(format!("{}: must not be empty", field("host")));
        }
        let credentials = match spec.auth {
            MailboxAuth::None => {
                return Err(format!(
                    "{}: none is not supported: POP3 and IMAP servers need a login \
                     (use userpass)",
                    field("auth")
                ));
            }
            MailboxAuth::Userpass => {
                let read = |f: &str, r: &Option<bounceops_api::SecretRef>| match r {
                    None => Err(format!("{}: required with auth: userpass", field(f))),
                    Some(r) => secrets
                        .read(r)
                        .map_err(|e| format!("{}: secret {}/{}: {e}", field(f), r.name, r.key)),
                };
                let user = read("usernameSecretRef", &spec.username_secret_ref)?;
                let password = read("passwordSecretRef", &spec.password_secret_ref)?;
                if user.contains(['\r', '\n', ' ']) {
                    return Err(format!(
                        "{}: the user name contains spaces or line breaks",
                        field("usernameSecretRef")
                    ));
                }
                if password.contains(['\r', '\n']) {
                    return Err(format!(
                        "{}: the password contains line breaks",
                        field("passwordSecretRef")
                    ));
                }
                Some((user, Password(password)))
            }
        };
        let scan_interval = humantime::parse_duration(&spec.scan_interval)
            .map_err(|e| format!("{}: {:?}: {e}", field("scanInterval"), spec.scan_interval))?;
        if scan_interval < Duration::from_secs(1) {
            return Err(format!("{}: must be at least 1s", field("scanInterval")));
        }
        if spec.max_messages_per_scan == 0 {
            return Err(format!(
                "{}: must be at least 1",
                field("maxMessagesPerScan")
            ));
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&spec.max_message_bytes) {
            return Err(format!(
                "{}: {} is out of range: at least {MIN_MESSAGE_BYTES} (64 KiB), at most \
                 {MAX_MESSAGE_BYTES} (1 GiB)",
                field("maxMessageBytes"),
                spec.max_message_bytes
            ));
        }
        if let Some(target) = &spec.move_to {
            if spec.protocol != MailboxProtocol::Imap {
                return Err(format!(
                    "{}: only IMAP mailboxes can move messages (POP3 has no folders)",
                    field("moveTo")
                ));
            }
            if target.trim().is_empty() {
                return Err(format!("{}: must not be empty", field("moveTo")));
            }
            // IMAP names other than INBOX travel as modified UTF-7, which is not
            // implemented here: a non-ASCII name would reach the server as raw UTF-8.
            if !target.is_ascii() || target.contains(['\r', '\n']) {
                return Err(format!(
                    "{}: {target:?}: only ASCII folder names are supported",
                    field("moveTo")
                ));
            }
            // INBOX is case-insensitive (RFC 3501 5.1); every other name is not.
            let inbox = |f: &str| f.eq_ignore_ascii_case("INBOX");
            if *target == spec.folder || (inbox(target) && inbox(&spec.folder)) {
                return Err(format!(
                    "{}: must differ from folder {:?}",
                    field("moveTo"),
                    spec.folder
                ));
            }
        }
        let protocol = match spec.protocol {
            MailboxProtocol::Pop3 => "pop3",
            MailboxProtocol::Imap => "imap",
        };
        let user = credentials.as_ref().map(|c| c.0.as_str()).unwrap_or("");
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
            credentials,
            folder: spec.folder.clone(),
            move_to: spec.move_to.clone(),
            scan_interval,
            max_messages_per_scan: spec.max_messages_per_scan as usize,
            max_message_bytes: spec.max_message_bytes,
            key,
        })
    }

    /// Every mailbox of the configuration; names must be unique (they label metrics).
    pub fn resolve_all(
        specs: &[MailboxSpec],
        secrets: &SecretsDir,
    ) -> Result<Vec<MailboxConfig>, String> {
        let mut out: Vec<MailboxConfig> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let m = MailboxConfig::resolve(spec, i, secrets)?;
            if out.iter().any(|o| o.name == m.name) {
                return Err(format!(
                    "spec.mailboxes[{i}].name: {:?} is used twice",
                    m.name
                ));
            }
            out.push(m);
        }
        Ok(out)
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
            credentials: None,
            folder: "INBOX".into(),
            move_to: None,
            scan_interval: Duration::from_secs(60),
            max_messages_per_scan: 10,
            max_message_bytes: bounceops_api::defaults::max_message_bytes(),
            key: format!("pop3://u@127.0.0.1:110/{name}"),
        }
    }
}

/// The bounds of `maxMessageBytes`, as the CRD states them: below 64 KiB real bounces
/// (a DSN quoting its original) would be refused; above 1 GiB the pod's memory limit,
/// not this setting, would decide what happens.
pub const MIN_MESSAGE_BYTES: u64 = 64 << 10;
pub const MAX_MESSAGE_BYTES: u64 = 1 << 30;

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

    pub async fn list(&mut self) -> Result<Vec<Listed>, ScanError> {
        match self {
            Session::Pop3(s) => s.list().await,
            Session::Imap(s) => s.list().await,
        }
    }

    /// The messages `handles`, each bounded by `maxMessageBytes`; a message missing from
    /// the answer was expunged meanwhile (IMAP) or follows an oversized one (POP3).
    pub async fn fetch(&mut self, handles: &[u32]) -> Result<Vec<(u32, Fetched)>, ScanError> {
        match self {
            Session::Pop3(s) => s.fetch(handles).await,
            Session::Imap(s) => s.fetch(handles).await,
        }
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
    /// Registers the mailbox metrics into `metrics`' registry (once per registry).
    pub fn new(settings: &Settings, store: Store, metrics: Metrics) -> anyhow::Result<Deps> {
        let mailbox_metrics = MailboxMetrics::register(metrics.registry())?;
        Ok(Deps {
            store,
            rules: Arc::new(settings.rules.clone()),
            metrics,
            mailbox_metrics,
        })
    }
}

/// `run --once`: scans every mailbox once, all at the same time, and fails when any scan
/// failed. A mailbox held by another scanner counts as done: that scanner is on it.
pub async fn run_once(settings: &Settings, mailboxes: Vec<MailboxConfig>) -> anyhow::Result<()> {
    let store = Store::connect_lazy(
        &settings.database_url,
        settings.spec.database.max_connections,
    )?;
    let deps = Deps::new(settings, store.clone(), Metrics::new())?;
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
        anyhow::bail!("mailbox scan failed: {}", failed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str) -> Result<MailboxConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        for key in ["username", "password"] {
            std::fs::create_dir_all(dir.path().join("mbox")).unwrap();
            std::fs::write(dir.path().join("mbox").join(key), "bounces").unwrap();
        }
        let spec: MailboxSpec = serde_yaml::from_str(&format!(
            "{{name: b, host: 127.0.0.1, port: 143, usernameSecretRef: {{name: mbox, key: username}}, \
             passwordSecretRef: {{name: mbox, key: password}}, {yaml}}}"
        ))
        .unwrap();
        MailboxConfig::resolve(&spec, 0, &SecretsDir::new(dir.path()))
    }

    #[test]
    fn move_to_is_an_imap_folder_other_than_the_scanned_one() {
        let m = resolve("protocol: imap, moveTo: Processed").unwrap();
        assert_eq!(m.move_to.as_deref(), Some("Processed"));
        assert_eq!(resolve("protocol: imap").unwrap().move_to, None);

        let err = resolve("protocol: pop3, moveTo: Processed").unwrap_err();
        assert!(err.contains("spec.mailboxes[0].moveTo: only IMAP"), "{err}");
        let err = resolve("protocol: imap, folder: Bounces, moveTo: Bounces").unwrap_err();
        assert!(err.contains("must differ from folder"), "{err}");
        let err = resolve("protocol: imap, moveTo: inbox").unwrap_err();
        assert!(err.contains("must differ from folder"), "{err}");
        let err = resolve("protocol: imap, moveTo: ' '").unwrap_err();
        assert!(err.contains("must not be empty"), "{err}");
        let err = resolve("protocol: imap, moveTo: Erledigt-ä").unwrap_err();
        assert!(err.contains("only ASCII"), "{err}");
        // Names other than INBOX are case-sensitive: a different folder.
        assert!(resolve("protocol: imap, folder: Bounces, moveTo: bounces").is_ok());
    }

    #[test]
    fn max_message_bytes_defaults_to_10_mib_within_64_kib_and_1_gib() {
        assert_eq!(
            resolve("protocol: pop3").unwrap().max_message_bytes,
            10 << 20
        );
        assert_eq!(
            resolve("protocol: pop3, maxMessageBytes: 65536")
                .unwrap()
                .max_message_bytes,
            65536
        );
        for bad in ["65535", "0", "1073741825"] {
            let err = resolve(&format!("protocol: pop3, maxMessageBytes: {bad}")).unwrap_err();
            assert!(
                err.contains("spec.mailboxes[0].maxMessageBytes") && err.contains("out of range"),
                "{err}"
            );
        }
    }
}
