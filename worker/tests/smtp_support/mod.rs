//! The bounce MX under test: a worker serving SMTP (and its ops HTTP server) on loopback,
//! a raw SMTP client, and the bounce messages real MTAs send.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::time::Duration;

use bounce_worker::config::{Reads, Settings};
use bounce_worker::secrets::SecretsDir;
use bounce_worker::smtp::verp::{Keys, Verp};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::common::write_config;

pub mod postfix;

pub const DOMAIN: &str = "bounces.example.com";
pub const KEY: &str = "test-verp-key-0123456789abcdef0123456789";
pub const PLAIN: &str = "bounces@example.com";
pub const FEEDBACK: &str = "fbl@example.com";

/// A worker with `spec.smtp` (`smtp_extra`: YAML lines added under `smtp:`, indented by
/// four spaces), serving until dropped.
pub struct SmtpWorker {
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    pub keys: Keys,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), bounce_worker::server::ServeError>>>,
}

pub fn smtp_spec(extra: &str) -> String {
    format!(
        "  smtp:\n    domains: [{DOMAIN}]\n    verpKeySecretRef: {{name: verp, key: key}}\n    \
         addresses: [{PLAIN}]\n    feedbackAddresses: [{FEEDBACK}]\n{extra}"
    )
}

impl SmtpWorker {
    pub async fn start(database_url: &str, smtp_extra: &str) -> SmtpWorker {
        SmtpWorker::start_on(database_url, smtp_extra, "127.0.0.1:0").await
    }

    pub async fn start_on(database_url: &str, smtp_extra: &str, smtp_addr: &str) -> SmtpWorker {
        let dir = tempfile::tempdir().unwrap();
        let (config, secrets) = write_config(dir.path(), database_url, &smtp_spec(smtp_extra));
        std::fs::create_dir_all(secrets.join("verp")).unwrap();
        std::fs::write(secrets.join("verp/key"), format!("{KEY}\n")).unwrap();
        if smtp_extra.contains("tlsSecretName") {
            write_tls(&secrets.join("mx-tls"));
        }
        let settings = Settings::load_for(&config, &SecretsDir::new(&secrets), None, Reads::Smtp)
            .expect("config");
        let smtp = TcpListener::bind(smtp_addr).await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (smtp_addr, http_addr) = (smtp.local_addr().unwrap(), http.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            bounce_worker::server::serve_everything(
                &settings,
                http,
                async {
                    let _ = stopped.await;
                },
                Vec::new(),
                Some(smtp),
            )
            .await
        });
        SmtpWorker {
            smtp: smtp_addr,
            http: http_addr,
            keys: Keys::new(KEY.as_bytes(), None).unwrap(),
            dir,
            stop: Some(stop),
            done: Some(done),
        }
    }

    pub fn verp(&self, subscriber: Uuid, campaign: Option<Uuid>) -> String {
        self.keys.address(
            "b",
            DOMAIN,
            Verp {
                subscriber,
                campaign,
            },
        )
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(mut self) -> Result<(), bounce_worker::server::ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap()
    }
}

impl Drop for SmtpWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A kubernetes.io/tls Secret's files for `localhost`, made now; returns the certificate.
pub fn write_tls(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    cert.pem()
}

/// The bounce-worker's `smtp_messages_total` series of `outcome`.
pub fn outcome(metrics: &str, outcome: &str) -> f64 {
    crate::common::metric_value(
        metrics,
        &format!("bounceops_smtp_messages_total{{outcome=\"{outcome}\"}}"),
    )
}

/// A raw SMTP client: what it writes goes out as given; replies are read whole
/// (multi-line ones joined with `\n`).
pub struct Client<S> {
    pub io: BufReader<S>,
}

/// How long a test waits for any one reply before it fails.
pub const REPLY_WITHIN: Duration = Duration::from_secs(30);

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(io: S) -> Client<S> {
        Client {
            io: BufReader::new(io),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.io.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next reply, `None` when the server closed the connection.
    pub async fn reply(&mut self) -> Option<String> {
        tokio::time::timeout(REPLY_WITHIN, self.reply_now())
            .await
            .expect("a reply in time")
    }

    async fn reply_now(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.io.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Some(lines.join("\n"));
            }
        }
    }

    /// Sends `command` (CRLF added) and returns the reply.
    pub async fn cmd(&mut self, command: &str) -> String {
        self.send(&format!("{command}\r\n")).await;
        self.reply().await.expect("a reply")
    }
}

pub async fn connect(addr: SocketAddr) -> Client<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = Client::new(tcp);
    let greeting = c.reply().await.unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    c
}

/// An RFC 3464 delivery status notification as Postfix writes one, for `recipient`.
pub fn dsn(recipient: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: b@example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <{id}@mx.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --B--\r\n",
        id = Uuid::new_v4().simple()
    )
}
