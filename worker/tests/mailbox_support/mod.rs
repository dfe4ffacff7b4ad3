//! Fixtures of the mailbox tests: a real dovecot (POP3 and IMAP, plain and TLS) started
//! per test on free loopback ports from a throwaway configuration, with a passwd-file
//! user and a maildir in a temporary folder; messages to put in it; and a TCP proxy that
//! breaks a session part-way.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bounce_worker::mailbox::{MailboxConfig, Password};
use bounceops_api::{MailboxProtocol, TlsMode};
use std::io::Write as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "s3cret-pw";

/// The dovecot binary: `BOUNCEOPS_TEST_DOVECOT` (set by scripts/test.sh), else the
/// Debian location.
fn dovecot_bin() -> PathBuf {
    let bin = std::env::var_os("BOUNCEOPS_TEST_DOVECOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/dovecot"));
    assert!(
        bin.exists(),
        "dovecot not found at {} : install dovecot-core dovecot-pop3d dovecot-imapd \
         (scripts/test.sh does it), or set BOUNCEOPS_TEST_DOVECOT",
        bin.display()
    );
    bin
}

/// One dovecot instance, stopped when dropped.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub pop3: u16,
    pub pop3s: u16,
    pub imap: u16,
    pub imaps: u16,
    /// The self-signed certificate the server presents (for 127.0.0.1 and localhost).
    pub cert: PathBuf,
    uid: u32,
    child: Child,
    config: PathBuf,
}

/// Ports that are free right now; dovecot binds them a moment later. A collision with
/// another test in that moment makes the start fail, and it is retried with new ports.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<StdListener> = (0..n)
        .map(|_| StdListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Mail processes must not run as root (dovecot refuses uid 0): as root the maildir is
/// given to `nobody`; otherwise it stays with the user running the tests.
fn mail_uid(dir: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(dir).unwrap().uid() {
        0 => 65534,
        uid => uid,
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).ok();
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Dovecot::start_with("")
    }

    /// Starts dovecot with `extra` appended to its configuration.
    pub fn start_with(extra: &str) -> Dovecot {
        let mut last = String::new();
        for _ in 0..5 {
            match Dovecot::try_start(extra) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("dovecot did not start: {last}");
    }

    fn try_start(extra: &str) -> Result<Dovecot, String> {
        let dir = tempfile::Builder::new()
            .prefix("dvt")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        let uid = mail_uid(root);
        for sub in ["run", "state", "home", "mail"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for sub in ["home", "mail"] {
            chown(&root.join(sub), uid);
        }
        // Dovecot's unprivileged processes (dovenull, dovecot) must reach the files.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = root.join("cert.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(root.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(
            root.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\nother:{{PLAIN}}other-pw::::::\n"),
        )
        .unwrap();

        let ports = free_ports(4);
        let r = root.display();
        let config = root.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                "base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n\
                 protocols = pop3 imap\nlisten = 127.0.0.1\n\
                 ssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n\
                 disable_plaintext_auth = no\nauth_failure_delay = 0\nauth_mechanisms = plain login\n\
                 first_valid_uid = 1\nmail_location = maildir:{r}/mail/%u\n\
                 pop3_uidl_format = %08Xu%08Xv\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/passwd\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={uid} gid={uid} home={r}/home/%u\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {}\n  }}\n  inet_listener imaps {{\n    port = {}\n    ssl = yes\n  }}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    port = {}\n  }}\n  inet_listener pop3s {{\n    port = {}\n    ssl = yes\n  }}\n}}\n{extra}\n",
                ports[0], ports[1], ports[2], ports[3]
            ),
        )
        .unwrap();
        for user in [USER, "other"] {
            for sub in ["new", "cur", "tmp"] {
                let d = root.join("mail").join(user).join(sub);
                std::fs::create_dir_all(&d).unwrap();
                chown(&d, uid);
            }
            chown(&root.join("mail").join(user), uid);
        }

        let mut child = Command::new(dovecot_bin())
            .arg("-F")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run dovecot: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("dovecot exited ({status}): {err} {log}"));
            }
            let up = ports
                .iter()
                .all(|p| StdStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("dovecot did not open its ports within 15s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Dovecot {
            imap: ports[0],
            imaps: ports[1],
            pop3: ports[2],
            pop3s: ports[3],
            cert: cert_path,
            uid,
            child,
            config,
            dir,
        })
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }

    /// Delivers a message as an MTA would: written to tmp/, then renamed into new/.
    pub fn deliver(&self, user: &str, raw: &[u8]) {
        self.deliver_with(user, |file| file.write_all(raw));
    }

    /// Delivers a message of `bytes` bytes (give or take a line): a reply carrying a
    /// large text, written line by line, never held in memory.
    pub fn deliver_large(&self, user: &str, bytes: usize) {
        self.deliver_with(user, |file| {
            let mut file = std::io::BufWriter::new(file);
            write!(
                file,
                "From: Carol <carol@example.org>\r\nTo: bounces@example.com\r\n\
                 Subject: Re: Our November issue, with the whole archive\r\n\
                 Message-ID: <{}@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
                 Content-Type: text/plain\r\n\r\n",
                Uuid::new_v4()
            )?;
            let line = format!("{}\r\n", "archive ".repeat(9));
            for _ in 0..bytes / line.len() {
                file.write_all(line.as_bytes())?;
            }
            file.flush()
        });
    }

    fn deliver_with(
        &self,
        user: &str,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{}.M{}P{}.test",
            1_700_000_000 + SEQ.fetch_add(1, Ordering::SeqCst),
            SEQ.load(Ordering::SeqCst),
            std::process::id()
        );
        let tmp = self.maildir(user).join("tmp").join(&name);
        let mut file = std::fs::File::create(&tmp).unwrap();
        write(&mut file).unwrap();
        drop(file);
        chown(&tmp, self.uid);
        std::fs::rename(&tmp, self.maildir(user).join("new").join(&name)).unwrap();
    }

    /// The messages in the mailbox (new/ and cur/), as bytes, sorted.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        self.read_all(&self.maildir(user))
    }

    /// The messages of one of the user's folders other than INBOX (Maildir++: `.<name>`).
    pub fn folder_messages(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        self.read_all(&self.maildir(user).join(format!(".{folder}")))
    }

    fn read_all(&self, dir: &Path) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self
            .files(dir)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        out.sort();
        out
    }

    /// The sizes of the messages in INBOX (`None`) or a folder, sorted; for mailboxes
    /// too large to read into memory.
    pub fn message_sizes(&self, user: &str, folder: Option<&str>) -> Vec<u64> {
        let dir = match folder {
            None => self.maildir(user),
            Some(f) => self.maildir(user).join(format!(".{f}")),
        };
        let mut out: Vec<u64> = self
            .files(&dir)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        out.sort();
        out
    }

    /// The message files of a maildir folder (new/ and cur/); none when it does not exist.
    fn files(&self, dir: &Path) -> Vec<PathBuf> {
        ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(dir.join(sub)).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .collect()
    }

    /// File names in cur/ (their `:2,` suffix carries the IMAP flags).
    pub fn cur_names(&self, user: &str) -> Vec<String> {
        std::fs::read_dir(self.maildir(user).join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// A mailbox of this server, as the worker resolves one from a BounceConfig.
    pub fn mailbox(&self, name: &str, protocol: MailboxProtocol, tls: TlsMode) -> MailboxConfig {
        let port = match (protocol, tls) {
            (MailboxProtocol::Pop3, TlsMode::Tls) => self.pop3s,
            (MailboxProtocol::Pop3, _) => self.pop3,
            (MailboxProtocol::Imap, TlsMode::Tls) => self.imaps,
            (MailboxProtocol::Imap, _) => self.imap,
        };
        mailbox_at(name, protocol, tls, port)
    }

    /// The `mailboxes:` YAML of a BounceConfig for this server; secrets go to `secrets`.
    pub fn mailbox_yaml(
        &self,
        secrets: &Path,
        name: &str,
        protocol: &str,
        tls: &str,
        password: &str,
    ) -> String {
        std::fs::create_dir_all(secrets.join("mbox")).unwrap();
        std::fs::write(secrets.join("mbox/username"), format!("{USER}\n")).unwrap();
        std::fs::write(secrets.join("mbox/password"), format!("{password}\n")).unwrap();
        let port = match (protocol, tls) {
            ("pop3", "tls") => self.pop3s,
            ("pop3", _) => self.pop3,
            (_, "tls") => self.imaps,
            _ => self.imap,
        };
        format!(
            "  mailboxes:\n    - name: {name}\n      protocol: {protocol}\n      host: 127.0.0.1\n      port: {port}\n      tls: {tls}\n      usernameSecretRef: {{name: mbox, key: username}}\n      passwordSecretRef: {{name: mbox, key: password}}\n      scanInterval: 1s\n      maxMessagesPerScan: 100000\n"
        )
    }
}

pub fn mailbox_at(name: &str, protocol: MailboxProtocol, tls: TlsMode, port: u16) -> MailboxConfig {
    let p = match protocol {
        MailboxProtocol::Pop3 => "pop3",
        MailboxProtocol::Imap => "imap",
    };
    MailboxConfig {
        name: name.into(),
        protocol,
        host: "127.0.0.1".into(),
        port,
        tls,
        tls_skip_verify: true,
        credentials: (USER.into(), Password::new(PASSWORD)),
        folder: "INBOX".into(),
        move_to: None,
        scan_interval: Duration::from_secs(60),
        max_messages_per_scan: 100_000,
        max_message_bytes: bounceops_api::defaults::max_message_bytes(),
        key: format!("{p}://{USER}@127.0.0.1:{port}/INBOX-{}", Uuid::new_v4()),
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(dovecot_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One of the classifier's fixture messages (`classify/tests/fixtures/<name>`), where
/// `classify/tests/fixtures/expected.jsonl` says what each one is.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../classify/tests/fixtures")
        .join(name)
}

/// The bytes of [`fixture_path`].
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture message {}: {e}", path.display()))
}

/// A DSN as Postfix writes it, for a campaign mail listmonk sent: the original's headers
/// (with listmonk's X-Listmonk-* headers) come back base64-encoded inside message/rfc822.
pub fn listmonk_bounce(
    recipient: &str,
    status: &str,
    subscriber: Option<Uuid>,
    campaign: Option<Uuid>,
) -> Vec<u8> {
    let mut original = format!(
        "From: News <news@example.com>\r\nTo: {recipient}\r\nSubject: Our November issue\r\nMessage-ID: <{}@example.com>\r\n",
        Uuid::new_v4()
    );
    if let Some(c) = campaign {
        original.push_str(&format!("X-Listmonk-Campaign: {c}\r\n"));
    }
    if let Some(s) = subscriber {
        original.push_str(&format!("X-Listmonk-Subscriber: {s}\r\n"));
    }
    original.push_str("Content-Type: text/plain\r\n\r\nHello, this is the newsletter.\r\n");
    let encoded = base64_lines(original.as_bytes());
    let (action, diagnostic) = if status.starts_with('5') {
        (
            "failed",
            format!("smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown"),
        )
    } else {
        (
            "failed",
            format!("smtp; 452 {status} <{recipient}>: Mailbox full"),
        )
    };
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: bounces@example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{id}@mx.example.net>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"BND\"\r\n\
         \r\n\
         --BND\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --BND\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: {diagnostic}\r\n\
         \r\n\
         --BND\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {encoded}\r\n\
         --BND--\r\n",
        id = Uuid::new_v4(),
    )
    .into_bytes()
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A human answering the newsletter.
pub fn human_reply() -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: bounces@example.com\r\nSubject: Re: Our November issue\r\n\
         Message-ID: <{}@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n\
         Thanks, but please send it to my other address.\r\n",
        Uuid::new_v4()
    )
    .into_bytes()
}

/// Somebody else's newsletter landing in the bounce mailbox.
pub fn newsletter() -> Vec<u8> {
    format!(
        "From: Shop <deals@shop.example>\r\nTo: bounces@example.com\r\nSubject: 20% off this week\r\n\
         List-Unsubscribe: <mailto:unsubscribe@shop.example>\r\nPrecedence: bulk\r\n\
         Message-ID: <{}@shop.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Content-Type: text/html\r\n\r\n<p>Deals!</p>\r\n",
        Uuid::new_v4()
    )
    .into_bytes()
}

/// An RFC 3834 vacation reply.
pub fn vacation() -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: bounces@example.com\r\nSubject: Out of office\r\n\
         Auto-Submitted: auto-replied\r\nMessage-ID: <{}@example.org>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n\
         I am away until December and will read your message when I am back.\r\n",
        Uuid::new_v4()
    )
    .into_bytes()
}

/// A TCP proxy to `target` that closes each connection once it has forwarded
/// `cut_after` bytes from the server: a session dropped mid-answer.
pub struct Breaker {
    pub port: u16,
    pub forwarded: Arc<AtomicUsize>,
}

impl Breaker {
    pub async fn start(target: u16, cut_after: usize) -> Breaker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarded = Arc::new(AtomicUsize::new(0));
        let counter = forwarded.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let target: SocketAddr = ([127, 0, 0, 1], target).into();
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut buf = vec![0u8; 4096];
                    let mut sent = 0usize;
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = n.min(cut_after - sent);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                        counter.fetch_add(n, Ordering::SeqCst);
                        if sent >= cut_after {
                            break;
                        }
                    }
                    up.abort();
                    // Dropping both halves closes the client's connection mid-answer.
                });
            }
        });
        Breaker { port, forwarded }
    }
}
