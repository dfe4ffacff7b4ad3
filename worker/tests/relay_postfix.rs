//! The sending relay with a real upstream: Debian's Postfix, started on loopback with its own
//! configuration, refuses an unknown local recipient at RCPT, accepts mail for a domain whose
//! transport fails for good (and then bounces it, with a real DSN, to the return path the
//! relay wrote), and discards mail for another. The bounce MX (the smtp role) runs beside
//! the relay, on the same database, as in a cluster. Skipped, saying so, only where Postfix
//! is not installed.

mod common;
mod relay_support;
mod smtp_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bounce_worker::config::{Reads, Settings};
use bounce_worker::secrets::SecretsDir;
use bounceops_tests::dovecot::{Dovecot, PASSWORD, USER};
use common::{Proxy, TestDb, write_config};
use relay_support::dkim;
use smtp_support::postfix::{self, Postfix};
use smtp_support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;

fn skipped() -> bool {
    // `RUST_LOG=bounce_worker=debug` shows the relay's and the MX's logs beside a test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match postfix::unavailable() {
        Some(why) => {
            bounceops_tests::cluster::skipped("worker: the sending relay with Postfix", &why);
            true
        }
        None => false,
    }
}

/// A worker with `--role relay`'s settings, its relay and ops HTTP server on loopback.
struct Relay {
    smtp: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Relay {
    /// `extra`: YAML lines under `relay:`, indented by four spaces; `secrets`: files to
    /// write under the secrets folder.
    async fn start(
        database_url: &str,
        upstream: SocketAddr,
        extra: &str,
        secrets: &[(&str, &str)],
    ) -> Relay {
        let upstream = format!(
            // Generous: a Postfix that starts its first smtpd on a loaded machine can take
            // seconds to greet; under the test client's 30 s wait for a reply.
            "{{host: 127.0.0.1, port: {}, tls: none, timeout: 20s}}",
            upstream.port()
        );
        Relay::start_with_upstream(database_url, &upstream, extra, secrets).await
    }

    /// [`Relay::start`] with `spec.relay.upstream` as given (a YAML flow mapping).
    async fn start_with_upstream(
        database_url: &str,
        upstream: &str,
        extra: &str,
        secrets: &[(&str, &str)],
    ) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!(
            "{}  relay:\n    returnPathDomain: {DOMAIN}\n    replicas: 0\n    upstream: {upstream}\n{extra}",
            smtp_spec(""),
        );
        let (config, secrets_dir) = write_config(dir.path(), database_url, &spec);
        std::fs::create_dir_all(secrets_dir.join("verp")).unwrap();
        std::fs::write(secrets_dir.join("verp/key"), format!("{KEY}\n")).unwrap();
        for (path, text) in secrets {
            let p = secrets_dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let settings =
            Settings::load_for(&config, &SecretsDir::new(&secrets_dir), None, Reads::Relay)
                .expect("config");
        assert!(
            settings.smtp.is_none(),
            "the relay reads no bounce MX certificate"
        );
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (smtp, http_addr) = (relay.local_addr().unwrap(), http.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            bounce_worker::server::serve_with_relay(
                &settings,
                http,
                async {
                    let _ = stopped.await;
                },
                Vec::new(),
                None,
                Some(relay),
            )
            .await
        });
        Relay {
            smtp,
            http: http_addr,
            _dir: dir,
            stop: Some(stop),
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn metric(text: &str, series: &str) -> f64 {
    common::metric_value(text, series)
}

/// Postfix as the upstream: `known` is its one local user on local.test (others are refused
/// at RCPT); user@gone.test is accepted (a virtual alias) and then fails for good, since it
/// leads to a local user that does not exist (a DSN to the return path); mail to sink.test
/// is accepted and discarded; the DSNs go to the bounce MX at `mx`.
fn upstream(mx: SocketAddr) -> Postfix {
    Postfix::start(
        &[(DOMAIN, mx)],
        &format!(
            "local_recipient_maps = inline:{{ known=ok }}\n\
             virtual_alias_domains = gone.test\n\
             virtual_alias_maps = inline:{{ user@gone.test=ghost@local.test }}\n\
             transport_maps = inline:{{ {DOMAIN}=smtp:[{}]:{}, sink.test=discard: }}\n",
            mx.ip(),
            mx.port()
        ),
    )
}

/// A message as listmonk writes one.
fn listmonk_mail(to: &str, subscriber: Uuid, campaign: Uuid, message_id: &str) -> String {
    format!(
        "From: News <news@sender.test>\r\nTo: <{to}>\r\nSubject: Our news\r\n\
         Message-Id: <{message_id}>\r\nX-Listmonk-Subscriber: {subscriber}\r\n\
         X-Listmonk-Campaign: {campaign}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n..A line that starts with a dot.\r\n"
    )
}

/// Sends one message as listmonk does, MAIL, RCPT and DATA pipelined (RFC 2920), on an open
/// session; returns the answer after the final dot.
async fn send<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    c: &mut Client<S>,
    to: &str,
    message: &str,
) -> String {
    c.send(&format!(
        "MAIL FROM:<news@sender.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n"
    ))
    .await;
    for expect in ["250", "250", "354"] {
        let r = c.reply().await.unwrap();
        assert!(r.starts_with(expect), "{r}");
    }
    c.send(&format!("{message}.\r\n")).await;
    c.reply().await.unwrap()
}

async fn ehlo(addr: SocketAddr) -> Client<TcpStream> {
    let mut c = connect(addr).await;
    let r = c.cmd("EHLO listmonk.test").await;
    assert!(r.contains("PIPELINING"), "{r}");
    c
}

/// What Postfix itself answers to RCPT TO `to`.
async fn postfix_says(postfix: &Postfix, to: &str) -> String {
    let mut c = connect(postfix.smtpd).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<probe@sender.test>").await;
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    c.cmd("QUIT").await;
    r
}

async fn rows(
    db: &TestDb,
    subscriber: i32,
) -> Vec<(String, Option<i32>, String, serde_json::Value)> {
    sqlx::query_as(
        "SELECT type::text, campaign_id, source, meta FROM bounces WHERE subscriber_id = $1 ORDER BY id",
    )
    .bind(subscriber)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn until<F: std::future::Future<Output = bool>>(
    postfix: &Postfix,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_rcpt_and_later_bounces_are_each_recorded_once() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (refused_id, refused) = db.subscriber("nobody@local.test").await;
    let (gone_id, gone) = db.subscriber("user@gone.test").await;
    let (kept_id, kept) = db.subscriber("reader@sink.test").await;
    let (camp_id, camp) = db.campaign("news").await;
    let mx = SmtpWorker::start(&db.url, "").await;
    let postfix = upstream(mx.smtp);
    let relay = Relay::start(&db.url, postfix.smtpd, "", &[]).await;

    // One session, several messages, as listmonk's connection pool sends them.
    let mut c = ehlo(relay.smtp).await;
    let refusal = send(
        &mut c,
        "nobody@local.test",
        &listmonk_mail("nobody@local.test", refused, camp, "m1@sender.test"),
    )
    .await;
    let direct = postfix_says(&postfix, "nobody@local.test").await;
    assert!(direct.starts_with("550 5.1.1"), "{direct}");
    assert_eq!(
        refusal, direct,
        "the upstream's answer, code and text unchanged"
    );
    let accepted = send(
        &mut c,
        "user@gone.test",
        &listmonk_mail("user@gone.test", gone, camp, "m2@sender.test"),
    )
    .await;
    assert!(
        accepted.starts_with("250 2.0.0 Ok: queued as "),
        "{accepted}"
    );
    let delivered = send(
        &mut c,
        "reader@sink.test",
        &listmonk_mail("reader@sink.test", kept, camp, "m3@sender.test"),
    )
    .await;
    assert!(delivered.starts_with("250 "), "{delivered}");
    // listmonk sends the same message again (its own retry): nothing recorded twice.
    let again = send(
        &mut c,
        "nobody@local.test",
        &listmonk_mail("nobody@local.test", refused, camp, "m1@sender.test"),
    )
    .await;
    assert_eq!(again, direct);
    assert!(c.cmd("QUIT").await.starts_with("221"));

    let r = rows(&db, refused_id).await;
    assert_eq!(r.len(), 1, "{r:?}");
    let (kind, campaign, source, meta) = &r[0];
    assert_eq!(
        (kind.as_str(), *campaign, source.as_str()),
        ("hard", Some(camp_id), "smtp")
    );
    assert_eq!(meta["status"], "5.1.1", "{meta}");
    assert_eq!(meta["reason"], "userunknown", "{meta}");
    assert_eq!(meta["smtp_command"], "RCPT", "{meta}");
    assert_eq!(
        meta["diagnostic"],
        direct.trim_start_matches("550 "),
        "{meta}"
    );

    // The accepted message fails later; its DSN goes to the VERP return path the relay
    // wrote, and the bounce MX records it.
    until(
        &postfix,
        Duration::from_secs(60),
        "the DSN is recorded",
        || async { !rows(&db, gone_id).await.is_empty() },
    )
    .await;
    until(
        &postfix,
        Duration::from_secs(60),
        "Postfix's queue empties",
        || async { postfix.queue().is_empty() },
    )
    .await;
    let r = rows(&db, gone_id).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].0.as_str(), r[0].1), ("hard", Some(camp_id)), "{r:?}");
    assert_eq!(r[0].3["recipient"], "user@gone.test", "{r:?}");
    let verp = mx.verp(gone, Some(camp));
    assert!(
        postfix.log().contains(&format!("from=<{verp}>")),
        "the return path is the signed VERP address {verp}:\n{}",
        postfix.log()
    );
    assert!(rows(&db, kept_id).await.is_empty());

    let m = relay.metrics().await;
    assert_eq!(
        metric(&m, "bounceops_relay_recipients_total{class=\"5xx\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "bounceops_relay_recipients_total{class=\"2xx\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "bounceops_relay_messages_total{outcome=\"relayed\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "bounceops_relay_messages_total{outcome=\"refused\"}"),
        2.0
    );
    assert_eq!(metric(&m, "bounceops_relay_bounces_recorded_total"), 2.0);
    assert!(metric(&m, "bounceops_relay_upstream_duration_seconds_count") >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gets_451_and_nothing_recorded_then_the_next_message_flows() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("nobody@local.test").await;
    let (_, camp) = db.campaign("news").await;
    let mx = SmtpWorker::start(&db.url, "").await;
    let postfix = upstream(mx.smtp);
    let proxy = Proxy::start(postfix.smtpd).await;
    let relay = Relay::start(
        &db.url,
        SocketAddr::from(([127, 0, 0, 1], proxy.port)),
        "",
        &[],
    )
    .await;
    let mut c = ehlo(relay.smtp).await;
    let mail = listmonk_mail("nobody@local.test", sub, camp, "down@sender.test");
    // A first message opens a pooled connection; the cut closes it.
    let warm = listmonk_mail("reader@sink.test", Uuid::new_v4(), camp, "warm@sender.test");
    assert!(
        send(&mut c, "reader@sink.test", &warm)
            .await
            .starts_with("250 ")
    );

    proxy.cut();
    let r = send(&mut c, "nobody@local.test", &mail).await;
    assert!(r.starts_with("451 4.4.1"), "{r}");
    assert!(rows(&db, sub_id).await.is_empty(), "nothing recorded");
    let m = relay.metrics().await;
    let errors: f64 = m
        .lines()
        .filter(|l| l.starts_with("bounceops_relay_upstream_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 1.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "bounceops_relay_messages_total{outcome=\"upstream_unavailable\"}"
        ),
        1.0
    );

    proxy.restore();
    let r = send(&mut c, "nobody@local.test", &mail).await;
    assert!(r.starts_with("550 5.1.1"), "{r}");
    assert_eq!(rows(&db, sub_id).await.len(), 1);
}

/// A TCP tap between the relay and its upstream: passes everything through and keeps what
/// the relay wrote, to compare with what the sender wrote.
struct Tap {
    port: u16,
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Tap {
    async fn start(target: SocketAddr) -> Tap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = written.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(target).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let keep = keep.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
            }
        });
        Tap { port, written }
    }

    /// What the relay wrote after its DATA command, up to and including the end marker.
    fn message(&self) -> Vec<u8> {
        let w = self.written.lock().unwrap().clone();
        let at = w
            .windows(8)
            .position(|x| x == b"\r\nDATA\r\n")
            .expect("a DATA command")
            + 8;
        let end = w[at..]
            .windows(5)
            .position(|x| x == b"\r\n.\r\n")
            .expect("the end marker")
            + 5;
        w[at..at + end].to_vec()
    }
}

/// Sends `wire` (DATA's bytes, the end marker included) through a relay whose upstream is
/// Postfix behind a [`Tap`], in pieces of `piece` bytes; returns what the upstream received
/// after DATA.
async fn through_the_relay(wire: &[u8], piece: usize) -> Vec<u8> {
    let db = TestDb::new().await;
    let postfix = upstream(SocketAddr::from(([127, 0, 0, 1], 9)));
    let tap = Tap::start(postfix.smtpd).await;
    let relay = Relay::start(
        &db.url,
        SocketAddr::from(([127, 0, 0, 1], tap.port)),
        "",
        &[],
    )
    .await;
    let mut c = ehlo(relay.smtp).await;
    c.send("MAIL FROM:<news@sender.test>\r\nRCPT TO:<reader@sink.test>\r\nDATA\r\n")
        .await;
    for expect in ["250", "250", "354"] {
        let r = c.reply().await.unwrap();
        assert!(r.starts_with(expect), "{r}");
    }
    for piece in wire.chunks(piece) {
        c.send_bytes(piece).await;
    }
    let r = c.reply().await.unwrap();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    tap.message()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_reaches_the_upstream_byte_for_byte() {
    if skipped() {
        return;
    }
    // Dot-stuffed lines, a line that is only a stuffed dot, 8-bit text, a long line, a
    // header that folds, and 300 KB of body: what a DKIM signature covers, all of it.
    let mut wire = listmonk_mail(
        "reader@sink.test",
        Uuid::new_v4(),
        Uuid::new_v4(),
        "bytes@sender.test",
    )
    .replace("Subject: Our news\r\n", "Subject: Our\r\n news, été\r\n")
    .into_bytes();
    wire.extend_from_slice(b"..\r\n...three\r\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac\r\n");
    wire.extend_from_slice(&[b'x'; 990]);
    wire.extend_from_slice(b"\r\n");
    for i in 0..4000 {
        wire.extend_from_slice(
            format!("{i:06} 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\r\n")
                .as_bytes(),
        );
    }
    wire.extend_from_slice(b".\r\n");
    // Odd pieces, so that the end marker and the header block fall across reads.
    let relayed = through_the_relay(&wire, 1237).await;
    assert_eq!(relayed.len(), wire.len());
    assert!(
        relayed == wire,
        "the upstream received other bytes than the sender sent"
    );
}

/// A message signed by listmonk's side (DKIM, `simple/simple`, the strictest form) still
/// verifies as the upstream received it: the relay changes the envelope, never a header or
/// a byte of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dkim_signed_message_still_verifies_after_the_relay() {
    if skipped() {
        return;
    }
    if let Some(why) = dkim::unavailable() {
        bounceops_tests::cluster::skipped("worker: DKIM through the relay", &why);
        return;
    }
    let (sub, camp) = (Uuid::new_v4(), Uuid::new_v4());
    let key = dkim::Key::new();
    // A folded header, 8-bit text, lines that start with a dot (stuffed on the wire only).
    let message = format!(
        "From: News <news@{domain}>\r\nTo: <reader@sink.test>\r\nSubject: Our\r\n news, \u{e9}t\u{e9}\r\n\
         Message-Id: <dkim@{domain}>\r\nX-Listmonk-Subscriber: {sub}\r\n\
         X-Listmonk-Campaign: {camp}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Hello, \u{e9}t\u{e9}.\r\n.A line that starts with a dot.\r\n.\r\n..\r\nThe end.\r\n",
        domain = dkim::DOMAIN
    );
    let signed = key.sign(
        message.as_bytes(),
        &[
            "From",
            "To",
            "Subject",
            "Message-Id",
            "X-Listmonk-Subscriber",
            "X-Listmonk-Campaign",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
        ],
    );
    assert!(key.verifies(&signed), "as signed");

    let received = dkim::unstuff(&through_the_relay(&dkim::stuff(&signed), 4096).await);
    assert!(key.verifies(&received), "the upstream's copy verifies");
    // The check is one a change would fail: the same copy with the folded header unfolded.
    let unfolded = String::from_utf8(received).unwrap().replacen(
        "Subject: Our\r\n news",
        "Subject: Our news",
        1,
    );
    assert!(!key.verifies(unfolded.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_cannot_be_recorded_gets_451_and_the_resend_records_it() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("nobody@local.test").await;
    let (_, camp) = db.campaign("news").await;
    let postfix = upstream(SocketAddr::from(([127, 0, 0, 1], 9)));
    let proxy = Proxy::start(common::server_addr(&db.url)).await;
    let relay = Relay::start(&proxy.url_for(&db.url), postfix.smtpd, "", &[]).await;
    let mail = listmonk_mail("nobody@local.test", sub, camp, "dbdown@sender.test");
    let direct = postfix_says(&postfix, "nobody@local.test").await;
    let mut c = ehlo(relay.smtp).await;
    proxy.cut();
    // The upstream refused and delivered nothing: the sender is asked to retry rather than
    // told the refusal that would be lost.
    let r = send(&mut c, "nobody@local.test", &mail).await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    proxy.restore();
    assert!(rows(&db, sub_id).await.is_empty());
    let m = relay.metrics().await;
    assert_eq!(
        metric(
            &m,
            "bounceops_relay_messages_total{outcome=\"temporary_failure\"}"
        ),
        1.0
    );
    let r = send(&mut c, "nobody@local.test", &mail).await;
    assert_eq!(r, direct);
    assert_eq!(rows(&db, sub_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_required_when_configured_and_wrong_ones_refused() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let postfix = upstream(SocketAddr::from(([127, 0, 0, 1], 9)));
    let relay = Relay::start(
        &db.url,
        postfix.smtpd,
        "    credentialsSecretRef: {name: relay, key: credentials}\n",
        &[("relay/credentials", "listmonk:s3cret\n")],
    )
    .await;
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut c = connect(relay.smtp).await;
    let r = c.cmd("EHLO listmonk.test").await;
    assert!(r.contains("AUTH PLAIN LOGIN"), "{r}");
    let r = c.cmd("MAIL FROM:<news@sender.test>").await;
    assert!(r.starts_with("530 5.7.0"), "{r}");
    let r = c
        .cmd(&format!("AUTH PLAIN {}", b64("\0listmonk\0wrong")))
        .await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    // A login cancelled with `*` (RFC 4954 §4), at the first challenge and at the second.
    // An empty challenge: `334 `, which the client reads without its trailing space.
    let r = c.cmd("AUTH PLAIN").await;
    assert_eq!(r, "334");
    let r = c.cmd("*").await;
    assert!(r.starts_with("501 5.7.0"), "{r}");
    assert!(c.cmd("AUTH LOGIN").await.starts_with("334 "));
    assert!(c.cmd(&b64("listmonk")).await.starts_with("334 "));
    let r = c.cmd("*").await;
    assert!(r.starts_with("501 5.7.0"), "{r}");
    let r = c.cmd("AUTH LOGIN").await;
    assert!(r.starts_with("334 "), "{r}");
    let r = c.cmd(&b64("listmonk")).await;
    assert!(r.starts_with("334 "), "{r}");
    let r = c.cmd(&b64("s3cret")).await;
    assert!(r.starts_with("235 2.7.0"), "{r}");
    let mail = listmonk_mail(
        "reader@sink.test",
        Uuid::new_v4(),
        Uuid::new_v4(),
        "auth@sender.test",
    );
    assert!(
        send(&mut c, "reader@sink.test", &mail)
            .await
            .starts_with("250 ")
    );
    let m = relay.metrics().await;
    assert_eq!(
        metric(&m, "bounceops_relay_logins_total{result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "bounceops_relay_logins_total{result=\"ok\"}"),
        1.0
    );
}

/// The command line refuses a relay off loopback without logins, before it listens.
#[test]
fn an_open_relay_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "{}  relay:\n    returnPathDomain: {DOMAIN}\n    replicas: 0\n    upstream: {{host: 127.0.0.1, tls: none}}\n",
        smtp_spec("")
    );
    let (config, secrets) = write_config(dir.path(), "postgres://u@127.0.0.1:1/x", &spec);
    std::fs::create_dir_all(secrets.join("verp")).unwrap();
    std::fs::write(secrets.join("verp/key"), KEY).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bounce-worker"))
        .args([
            "run",
            "--role",
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--relay-listen",
            "0.0.0.0:0",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--secrets-dir")
        .arg(&secrets)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--relay-listen 0.0.0.0:0: a relay on an address other than loopback needs spec.relay.credentialsSecretRef"),
        "{err}"
    );
}

fn tls_client(cert_pem: &[u8]) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// The Deployment's form: STARTTLS with the Secret's certificate, and the login only under
/// TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_login_waits_for_starttls() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let postfix = upstream(SocketAddr::from(([127, 0, 0, 1], 9)));
    let certs = tempfile::tempdir().unwrap();
    let cert = write_tls(certs.path());
    let key = std::fs::read_to_string(certs.path().join("tls.key")).unwrap();
    let relay = Relay::start(
        &db.url,
        postfix.smtpd,
        "    credentialsSecretRef: {name: relay, key: credentials}\n    tlsSecretName: relay-tls\n",
        &[
            ("relay/credentials", "listmonk:s3cret\n"),
            ("relay-tls/tls.crt", &cert),
            ("relay-tls/tls.key", &key),
        ],
    )
    .await;
    use base64::Engine;
    let login = base64::engine::general_purpose::STANDARD.encode("\0listmonk\0s3cret");
    let mut c = connect(relay.smtp).await;
    let ehlo = c.cmd("EHLO listmonk.test").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let r = c.cmd(&format!("AUTH PLAIN {login}")).await;
    assert!(r.starts_with("538 5.7.11"), "{r}");
    assert!(c.cmd("STARTTLS").await.starts_with("220 "));
    let tls = tls_client(cert.as_bytes())
        .connect("localhost".try_into().unwrap(), c.io.into_inner())
        .await
        .expect("TLS with the Secret's certificate");
    let mut c = Client::new(tls);
    let ehlo = c.cmd("EHLO listmonk.test").await;
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(
        c.cmd(&format!("AUTH PLAIN {login}"))
            .await
            .starts_with("235 ")
    );
    let mail = listmonk_mail(
        "reader@sink.test",
        Uuid::new_v4(),
        Uuid::new_v4(),
        "tls@sender.test",
    );
    assert!(
        send(&mut c, "reader@sink.test", &mail)
            .await
            .starts_with("250 ")
    );
}

/// STARTTLS to the upstream is verified: against `caSecretRef`, it flows; against the
/// system's authorities, which never signed the test's certificate, it is refused (451),
/// never sent in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_certificate_is_always_verified() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let certs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        certs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cert = write_tls(certs.path());
    let postfix = Postfix::start_with(
        &[],
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/tls.crt\n\
             smtpd_tls_key_file = {d}/tls.key\ntransport_maps = inline:{{ sink.test=discard: }}\n",
            d = certs.path().display()
        ),
        "tlsmgr unix - - n 1000? 1 tlsmgr\n",
    );
    let mail = listmonk_mail(
        "reader@sink.test",
        Uuid::new_v4(),
        Uuid::new_v4(),
        "ca@sender.test",
    );
    for with_ca in [true, false] {
        let (secrets, expect) = match with_ca {
            true => (vec![("upstream/ca.crt", cert.as_str())], "250 "),
            false => (vec![], "451 4.4.1"),
        };
        let ca = if with_ca {
            ", caSecretRef: {name: upstream, key: ca.crt}"
        } else {
            ""
        };
        let relay = Relay::start_with_upstream(
            &db.url,
            &format!(
                "{{host: localhost, port: {}, tls: starttls, timeout: 20s{ca}}}",
                postfix.smtpd.port()
            ),
            "",
            &secrets,
        )
        .await;
        let mut c = ehlo(relay.smtp).await;
        let r = send(&mut c, "reader@sink.test", &mail).await;
        assert!(
            r.starts_with(expect),
            "with the CA: {with_ca}: {r}\n{}",
            postfix.log()
        );
        if !with_ca {
            // The handshake itself failed: the relay did not trust the certificate (not a
            // missing STARTTLS).
            until(
                &postfix,
                Duration::from_secs(10),
                "Postfix logs the failed handshake",
                || async { postfix.log().contains("SSL_accept error") },
            )
            .await;
            let m = relay.metrics().await;
            assert_eq!(
                metric(&m, "bounceops_relay_upstream_errors_total{kind=\"tls\"}"),
                1.0,
                "{m}"
            );
        }
    }
}

/// An upstream on implicit TLS (SMTPS, RFC 8314) that relays only for a login, checked by
/// a real dovecot (Postfix's `smtpd_sasl_type = dovecot`): the relay logs in with
/// `spec.relay.upstream`'s credentials; a wrong password is the upstream unavailable
/// (`451 4.4.1`), counted as an `auth` error, never a refusal recorded against anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_on_implicit_tls_gets_the_relays_login() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("reader@sink.test").await;
    let (_, camp) = db.campaign("news").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let d = dir.path().display();
    let cert = write_tls(dir.path());
    // Dovecot's authentication service, on a socket Postfix's smtpd asks.
    let _dovecot = Dovecot::start_with(&format!(
        "service auth {{\n  unix_listener {d}/auth {{\n    mode = 0666\n  }}\n}}\n"
    ));
    let smtps = postfix::free_port();
    let postfix = Postfix::start_with(
        &[],
        &format!(
            "smtpd_tls_cert_file = {d}/tls.crt\nsmtpd_tls_key_file = {d}/tls.key\n\
             smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {d}/auth\n\
             transport_maps = inline:{{ sink.test=discard: }}\n"
        ),
        &format!(
            "tlsmgr unix - - n 1000? 1 tlsmgr\n\
             127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes \
             -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes \
             -o smtpd_relay_restrictions=permit_sasl_authenticated,reject \
             -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n"
        ),
    );
    let mail = listmonk_mail("reader@sink.test", sub, camp, "smtps@sender.test");
    for (password, expect) in [(PASSWORD, "250 "), ("wrong", "451 4.4.1")] {
        let relay = Relay::start_with_upstream(
            &db.url,
            &format!(
                "{{host: localhost, port: {smtps}, tls: tls, timeout: 20s, \
                 caSecretRef: {{name: upstream, key: ca.crt}}, \
                 usernameSecretRef: {{name: upstream, key: username}}, \
                 passwordSecretRef: {{name: upstream, key: password}}}}"
            ),
            "",
            &[
                ("upstream/ca.crt", cert.as_str()),
                ("upstream/username", USER),
                ("upstream/password", password),
            ],
        )
        .await;
        let mut c = ehlo(relay.smtp).await;
        let r = send(&mut c, "reader@sink.test", &mail).await;
        assert!(r.starts_with(expect), "{password}: {r}\n{}", postfix.log());
        if password == "wrong" {
            let m = relay.metrics().await;
            assert_eq!(
                metric(&m, "bounceops_relay_upstream_errors_total{kind=\"auth\"}"),
                1.0,
                "{m}"
            );
        }
    }
    let log = postfix.log();
    assert!(
        log.contains(&format!("sasl_username={USER}")),
        "the message went through the login:\n{log}"
    );
    assert!(log.contains("authentication failed"), "{log}");
    assert!(rows(&db, sub_id).await.is_empty(), "nothing recorded");
}

/// An idle pooled connection that the upstream has closed since (its idle timeout) is not
/// the upstream unavailable: the relay opens a new one and the message goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_is_replaced() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let postfix = Postfix::start(
        &[],
        "smtpd_timeout = 1s\ntransport_maps = inline:{ sink.test=discard: }\n",
    );
    let relay = Relay::start(&db.url, postfix.smtpd, "", &[]).await;
    let mut c = ehlo(relay.smtp).await;
    let mail = |id: &str| listmonk_mail("reader@sink.test", Uuid::new_v4(), Uuid::new_v4(), id);
    assert!(
        send(&mut c, "reader@sink.test", &mail("first@sender.test"))
            .await
            .starts_with("250 ")
    );
    until(
        &postfix,
        Duration::from_secs(30),
        "Postfix closes the relay's idle connection",
        || async { postfix.log().contains("timeout after END-OF-MESSAGE") },
    )
    .await;
    let r = send(&mut c, "reader@sink.test", &mail("second@sender.test")).await;
    assert!(r.starts_with("250 "), "{r}\n{}", postfix.log());
    let m = relay.metrics().await;
    let errors: f64 = m
        .lines()
        .filter(|l| l.starts_with("bounceops_relay_upstream_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 0.0, "{m}");
    let log = postfix.log();
    let closed = log.find("timeout after END-OF-MESSAGE").unwrap();
    let reconnected = log[closed..].find(": connect from ");
    let second = log.find("message-id=<second@sender.test>");
    assert!(
        reconnected.is_some() && second > Some(closed),
        "the second message on a new connection:\n{log}"
    );
}

/// Mail without listmonk's headers: the return path of the subscriber the one recipient is
/// (no campaign), else the sender's own; a null sender stays null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_listmonks_headers_the_return_path_goes_by_address() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (_, sub) = db.subscriber("Member@Sink.test").await;
    let postfix = upstream(SocketAddr::from(([127, 0, 0, 1], 9)));
    let relay = Relay::start(&db.url, postfix.smtpd, "", &[]).await;
    let keys = bounce_worker::smtp::verp::Keys::new(KEY.as_bytes(), None).unwrap();
    let plain = |to: &str| {
        format!(
            "From: shop@sender.test\r\nTo: {to}\r\nSubject: Your order\r\nMessage-Id: <{}@sender.test>\r\n\r\nThanks.\r\n",
            Uuid::new_v4().simple()
        )
    };
    let mut c = ehlo(relay.smtp).await;
    for to in ["member@sink.test", "stranger@sink.test"] {
        let r = send(&mut c, to, &plain(to)).await;
        if !r.starts_with("250 ") {
            let m = relay.metrics().await;
            let errors: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("bounceops_relay_upstream_errors_total{"))
                .collect();
            panic!("{to}: {r}\n{errors:?}\n{}", postfix.log());
        }
    }
    c.send("MAIL FROM:<>\r\nRCPT TO:<member@sink.test>\r\nDATA\r\n")
        .await;
    for expect in ["250", "250", "354"] {
        assert!(c.reply().await.unwrap().starts_with(expect));
    }
    c.send(&format!("{}.\r\n", plain("member@sink.test"))).await;
    assert!(c.reply().await.unwrap().starts_with("250 "));
    let verp = keys.address(
        "b",
        DOMAIN,
        bounce_worker::smtp::verp::Verp {
            subscriber: sub,
            campaign: None,
        },
    );
    // Postfix's queue manager logs each envelope sender once it has the message.
    let senders = [
        format!("from=<{verp}>"),
        "from=<news@sender.test>".into(),
        "from=<>".into(),
    ];
    until(
        &postfix,
        Duration::from_secs(30),
        "the three senders are logged",
        || async {
            let log = postfix.log();
            senders.iter().all(|s| log.contains(s.as_str()))
        },
    )
    .await;
}
