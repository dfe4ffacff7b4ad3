//! Fixtures of the mailbox tests: the real dovecot of `bounceops_tests::dovecot` seen as
//! the worker's mailboxes, messages to put in it, and a TCP proxy that breaks a session
//! part-way.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bounce_worker::mailbox::{MailboxConfig, Password};
use bounceops_api::{MailboxProtocol, TlsMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

pub use bounceops_tests::dovecot::{Dovecot, PASSWORD, USER, listmonk_bounce};

/// The worker's view of a [`Dovecot`]: its mailboxes as the worker resolves them from a
/// BounceConfig.
pub trait DovecotMailboxes {
    fn mailbox(&self, name: &str, protocol: MailboxProtocol, tls: TlsMode) -> MailboxConfig;
    fn mailbox_yaml(
        &self,
        secrets: &Path,
        name: &str,
        protocol: &str,
        tls: &str,
        password: &str,
    ) -> String;
}

impl DovecotMailboxes for Dovecot {
    /// A mailbox of this server, as the worker resolves one from a BounceConfig.
    fn mailbox(&self, name: &str, protocol: MailboxProtocol, tls: TlsMode) -> MailboxConfig {
        let port = match (protocol, tls) {
            (MailboxProtocol::Pop3, TlsMode::Tls) => self.pop3s,
            (MailboxProtocol::Pop3, _) => self.pop3,
            (MailboxProtocol::Imap, TlsMode::Tls) => self.imaps,
            (MailboxProtocol::Imap, _) => self.imap,
        };
        mailbox_at(name, protocol, tls, port)
    }

    /// The `mailboxes:` YAML of a BounceConfig for this server; secrets go to `secrets`.
    fn mailbox_yaml(
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

/// A report naming one more recipient than a report may (`MAX_RECIPIENTS`), `first`
/// among them: a forgery made to blocklist a list wholesale.
pub fn naming_too_many(first: &str) -> Vec<u8> {
    let lines: String = std::iter::once(first.to_owned())
        .chain((1..=bounce_classify::MAX_RECIPIENTS).map(|i| format!("other{i}@example.net")))
        .map(|a| format!("<{a}>: host mx.example.net said: 550 5.1.1 User unknown\r\n"))
        .collect();
    format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{}@mx.example.net>\r\n\r\n\
         This is the mail system.\r\n\r\n{lines}",
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
