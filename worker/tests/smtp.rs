//! The bounce MX over loopback TCP, byte by byte as an MTA speaks it, against a real
//! Postgres: what is accepted, refused, recorded (once), and how limits, timeouts and bad
//! input end.

mod common;
mod smtp_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Proxy, TestDb, server_addr};
use smtp_support::*;
use tokio::io::AsyncReadExt;

async fn bounces_of(db: &TestDb, subscriber: i32) -> Vec<(String, Option<i32>, String)> {
    sqlx::query_as(
        "SELECT type::text, campaign_id, meta::text FROM bounces WHERE subscriber_id = $1 ORDER BY id",
    )
    .bind(subscriber)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// A worker on `db` with the default `spec.smtp`, and a session that has said EHLO.
async fn greeted(db: &TestDb) -> (SmtpWorker, Client<tokio::net::TcpStream>) {
    let w = SmtpWorker::start(&db.url, "").await;
    let mut c = connect(w.smtp).await;
    c.cmd("EHLO mta").await;
    (w, c)
}

/// MAIL from the null sender, RCPT to the plain bounce address, and DATA, one at a time.
async fn start_data(c: &mut Client<tokio::net::TcpStream>) {
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    let rcpt = c.cmd(&format!("RCPT TO:<{PLAIN}>")).await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").await.starts_with("354"));
}

/// MAIL, RCPT, DATA and the message pipelined in one write (RFC 2920), then the replies.
async fn pipelined(
    c: &mut Client<tokio::net::TcpStream>,
    rcpts: &[&str],
    message: &str,
) -> Vec<String> {
    let mut out = String::from("MAIL FROM:<> BODY=8BITMIME\r\n");
    for r in rcpts {
        out.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    out.push_str("DATA\r\n");
    c.send(&out).await;
    let mut replies = Vec::new();
    for _ in 0..rcpts.len() + 2 {
        replies.push(c.reply().await.unwrap());
    }
    if replies.last().unwrap().starts_with("354") {
        c.send(&format!("{message}.\r\n")).await;
        replies.push(c.reply().await.unwrap());
    }
    replies
}

#[tokio::test]
async fn a_verp_bounce_is_recorded_once_for_the_tokens_subscriber_and_campaign() {
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("gone@example.net").await;
    let (camp_id, camp) = db.campaign("c").await;
    let w = SmtpWorker::start(&db.url, "").await;
    let mut c = connect(w.smtp).await;
    let ehlo = c.cmd("EHLO mta.example.net").await;
    for ext in [
        "SIZE 10485760",
        "PIPELINING",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "{ext} not advertised: {ehlo}");
    }
    assert!(
        !ehlo.contains("STARTTLS"),
        "no certificate, no STARTTLS: {ehlo}"
    );
    let verp = w.verp(sub, Some(camp));
    // The report names another address: the token decides who bounced.
    let message = dsn("alias@example.net", "5.1.1", "550 5.1.1 User unknown");
    let replies = pipelined(&mut c, &[&verp], &message).await;
    assert!(replies[0].starts_with("250 2.1.0"), "{replies:?}");
    assert!(replies[1].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[2].starts_with("354"), "{replies:?}");
    assert!(replies[3].starts_with("250 2.0.0"), "{replies:?}");
    let rows = bounces_of(&db, sub_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "hard");
    assert_eq!(rows[0].1, Some(camp_id));
    assert!(rows[0].2.contains("alias@example.net"), "{}", rows[0].2);

    // The MTA lost our 250 and sends the same message again: 250, nothing twice.
    let replies = pipelined(&mut c, &[&verp.to_ascii_uppercase()], &message).await;
    assert!(replies[3].starts_with("250 "), "{replies:?}");
    assert_eq!(bounces_of(&db, sub_id).await.len(), 1);
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");

    let m = w.metrics().await;
    assert_eq!(outcome(&m, "recorded"), 2.0);
    assert_eq!(
        common::metric_value(&m, "bounceops_smtp_sessions_total"),
        1.0
    );
    assert!(
        m.contains("bounceops_smtp_data_duration_seconds_count 2"),
        "{m}"
    );
    // The evidence is kept with the bounce, as for mailbox mail.
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap_or(-1);
    assert!(kept >= 1, "evidence rows: {kept}");
}

#[tokio::test]
async fn plain_and_feedback_addresses_match_by_the_reported_address() {
    let db = TestDb::new().await;
    let (sub_id, _) = db.subscriber("someone@example.net").await;
    let (w, mut c) = greeted(&db).await;
    let message = dsn("someone@example.net", "4.2.2", "452 4.2.2 Mailbox full");
    let replies = pipelined(&mut c, &["Bounces@Example.com"], &message).await;
    assert!(replies[3].starts_with("250 "), "{replies:?}");
    let rows = bounces_of(&db, sub_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "soft");

    // An auto-reply: accepted, counted, not a bounce.
    let auto = "From: someone@example.net\r\nTo: bounces@example.com\r\nSubject: Out of office\r\n\
                Auto-Submitted: auto-replied\r\n\r\nI am away.\r\n";
    let replies = pipelined(&mut c, &[PLAIN], auto).await;
    assert!(
        replies[3].starts_with("250 2.0.0 Accepted, not a bounce"),
        "{replies:?}"
    );
    assert_eq!(bounces_of(&db, sub_id).await.len(), 1);
    assert_eq!(outcome(&w.metrics().await, "not_bounce"), 1.0);
}

/// A report naming more recipients than one message can have had is refused after DATA and
/// records nothing, not even the subscriber it names; one naming as many as allowed is
/// recorded.
#[tokio::test]
async fn a_report_naming_more_than_the_limit_is_refused_and_records_nothing() {
    let db = TestDb::new().await;
    let (sub_id, _) = db.subscriber("listed@example.net").await;
    let (w, mut c) = greeted(&db).await;
    let report = |n: usize| {
        let lines: String = std::iter::once("listed@example.net".to_owned())
            .chain((1..n).map(|i| format!("other{i}@example.net")))
            .map(|a| format!("<{a}>: host mx.example.net said: 550 5.1.1 User unknown\r\n"))
            .collect();
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\r\nThis is the mail system.\r\n\r\n{lines}"
        )
    };
    let max = bounce_classify::MAX_RECIPIENTS;
    let replies = pipelined(&mut c, &[PLAIN], &report(max + 1)).await;
    assert!(
        replies[3].starts_with("550 5.7.0 The report names more than 1000 recipients"),
        "{replies:?}"
    );
    assert!(bounces_of(&db, sub_id).await.is_empty());
    let unmatched: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.unmatched")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(unmatched, 0);
    assert_eq!(outcome(&w.metrics().await, "too_many_recipients"), 1.0);

    let replies = pipelined(&mut c, &[PLAIN], &report(max)).await;
    assert_eq!(replies[3], format!("250 2.0.0 Recorded {max} bounce(s)"));
    assert_eq!(bounces_of(&db, sub_id).await.len(), 1);
    assert_eq!(outcome(&w.metrics().await, "recorded"), 1.0);
}

#[tokio::test]
async fn unknown_and_forged_recipients_are_refused_at_rcpt_and_never_recorded() {
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("x@example.net").await;
    let (w, mut c) = greeted(&db).await;
    c.cmd("MAIL FROM:<>").await;
    let good = w.verp(sub, None);
    let (local, _) = good.split_once('@').unwrap();
    let mut forged = local.to_owned().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let forged = format!("{}@{DOMAIN}", String::from_utf8(forged).unwrap());
    let other_key = bounce_worker::smtp::verp::Keys::new(&[7u8; 32], None).unwrap();
    let foreign_key = other_key.address(
        "b",
        DOMAIN,
        bounce_worker::smtp::verp::Verp {
            subscriber: sub,
            campaign: None,
        },
    );
    for (rcpt, reply) in [
        ("postmaster@example.org", "550 5.1.1"),
        (&format!("someone@{DOMAIN}"), "550 5.1.1"),
        (&format!("b+{}@other.example", &local[2..]), "550 5.1.1"),
        (&forged, "550 5.7.1"),
        (&foreign_key, "550 5.7.1"),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with(reply), "{rcpt}: {r}");
    }
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("554 5.5.1"), "no valid recipient: {r}");
    let m = w.metrics().await;
    assert_eq!(outcome(&m, "unknown_recipient"), 3.0);
    assert_eq!(outcome(&m, "forged_token"), 2.0);
    assert!(bounces_of(&db, sub_id).await.is_empty());
}

#[tokio::test]
async fn bad_sequences_and_bad_lines_get_clear_errors() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    maxErrors: 100\n").await;
    let mut c = connect(w.smtp).await;
    for (command, reply) in [
        ("MAIL FROM:<>", "503 5.5.1"),
        ("HELO mta", "250 "),
        ("RCPT TO:<bounces@example.com>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("FOO bar", "500 5.5.2"),
        ("MAIL FROM:<no-closing", "501 "),
        ("MAIL FROM:<>", "250 2.1.0"),
        ("MAIL FROM:<>", "503 5.5.1"),
        ("RCPT TO:<bounces@example.com> FOO=BAR", "555 5.5.4"),
        ("BDAT 10 LAST", "502 5.5.1"),
        ("STARTTLS", "502 5.5.1"),
        ("VRFY someone", "252 "),
        ("NOOP", "250 "),
        ("RSET", "250 "),
    ] {
        let r = c.cmd(command).await;
        assert!(r.starts_with(reply), "{command}: {r}");
    }
    c.send("NOOP\n").await;
    assert!(c.reply().await.unwrap().starts_with("500 5.5.2 Bare LF"));
    c.send_bytes(b"NO\0OP\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("500 5.5.2 NUL"));
    c.send(&format!("NOOP {}\r\n", "x".repeat(100_000))).await;
    assert!(
        c.reply()
            .await
            .unwrap()
            .starts_with("500 5.5.2 Line too long")
    );
    assert!(
        c.cmd("NOOP").await.starts_with("250 "),
        "the session goes on"
    );
}

#[tokio::test]
async fn too_many_errors_end_the_session() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    maxErrors: 3\n").await;
    let mut c = connect(w.smtp).await;
    assert!(c.cmd("FOO").await.starts_with("500"));
    assert!(c.cmd("FOO").await.starts_with("500"));
    let last = c.cmd("FOO").await;
    assert!(last.starts_with("500"), "{last}");
    assert_eq!(
        c.reply().await.as_deref(),
        Some("421 4.7.0 Too many errors, closing")
    );
    assert_eq!(c.reply().await, None, "closed");
}

#[tokio::test]
async fn recipients_per_message_are_bounded() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    maxRecipients: 2\n").await;
    let mut c = connect(w.smtp).await;
    c.cmd("EHLO mta").await;
    c.cmd("MAIL FROM:<>").await;
    assert!(
        c.cmd(&format!("RCPT TO:<{PLAIN}>"))
            .await
            .starts_with("250")
    );
    assert!(
        c.cmd(&format!("RCPT TO:<{FEEDBACK}>"))
            .await
            .starts_with("250")
    );
    let third = w.verp(uuid::Uuid::new_v4(), None);
    assert!(
        c.cmd(&format!("RCPT TO:<{third}>"))
            .await
            .starts_with("452 4.5.3")
    );
}

/// Resident memory of this test process (the worker runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_with_bounded_memory() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    maxMessageBytes: 65536\n").await;
    let mut c = connect(w.smtp).await;
    c.cmd("EHLO mta").await;
    // Announced with SIZE: refused at once.
    let r = c.cmd("MAIL FROM:<> SIZE=157286400").await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // Not announced: 150 MB of DATA, read to its end and dropped as it comes.
    start_data(&mut c).await;
    let before = rss();
    let line = format!("{}\r\n", "y".repeat(998));
    let chunk = line.repeat(1024); // 1 MB
    for _ in 0..150 {
        c.send(&chunk).await;
    }
    c.send(".\r\n").await;
    let r = c.reply().await.unwrap();
    let grown = rss().saturating_sub(before);
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(
        grown < 32 << 20,
        "RSS grew by {} MiB for a 150 MB message",
        grown >> 20
    );
    assert!(
        c.cmd("NOOP").await.starts_with("250"),
        "the session goes on"
    );
    assert_eq!(outcome(&w.metrics().await, "too_big"), 2.0);
}

/// Messages held at once share a budget of four times `maxMessageBytes` (plus a read each)
/// beyond the first 128 KiB of each: five senders in the middle of 400 KB messages take
/// 384 KiB each (their buffers grow by powers of two to 512 KiB), so a sixth large message
/// finds too little, is read, dropped and answered 452 (the sender keeps it and retries),
/// while a small one still gets in; once the five are answered their room is free again.
#[tokio::test]
async fn messages_past_the_memory_budget_get_452_and_the_room_comes_back() {
    let db = TestDb::new().await;
    // One refusal would end a session: a 452 is the server's state, not the sender's error.
    let w = SmtpWorker::start(&db.url, "    maxMessageBytes: 524288\n    maxErrors: 1\n").await;
    let held = |m: &str| common::metric_value(m, "bounceops_smtp_message_bytes_held");
    let large = format!(
        "Subject: a large reply\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(998)).repeat(400)
    );
    let mut senders = Vec::new();
    for _ in 0..5 {
        let mut c = connect(w.smtp).await;
        c.cmd("EHLO mta").await;
        start_data(&mut c).await;
        c.send(&large).await;
        senders.push(c);
    }
    // Readiness: the five are held once the gauge shows their room.
    let five = 5.0 * f64::from((512 << 10) - (128 << 10));
    let deadline = Instant::now() + Duration::from_secs(30);
    while held(&w.metrics().await) < five {
        assert!(
            Instant::now() < deadline,
            "the five messages were never held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held(&w.metrics().await), five);

    let mut sixth = connect(w.smtp).await;
    sixth.cmd("EHLO mta").await;
    let replies = pipelined(&mut sixth, &[PLAIN], &large).await;
    assert_eq!(
        replies[3], "452 4.3.1 Insufficient system storage, try again later",
        "{replies:?}"
    );
    assert_eq!(outcome(&w.metrics().await, "insufficient_storage"), 1.0);
    let small = "Subject: small\r\n\r\nhello\r\n";
    let replies = pipelined(&mut sixth, &[PLAIN], small).await;
    assert!(replies[3].starts_with("250 2.0.0"), "{replies:?}");

    for c in &mut senders {
        c.send(".\r\n").await;
        let reply = c.reply().await.unwrap();
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    assert_eq!(held(&w.metrics().await), 0.0, "all given back");
    let replies = pipelined(&mut sixth, &[PLAIN], &large).await;
    assert!(replies[3].starts_with("250 2.0.0"), "{replies:?}");
}

#[tokio::test]
async fn an_idle_client_and_a_stalled_data_transfer_time_out() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    commandTimeout: 1s\n    dataTimeout: 2s\n").await;
    let mut c = connect(w.smtp).await;
    let started = Instant::now();
    let r = c.reply().await.unwrap();
    assert_eq!(r, "421 4.4.2 Timeout waiting for a command, closing");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(c.reply().await, None);

    let mut c = connect(w.smtp).await;
    c.cmd("EHLO mta").await;
    c.cmd("MAIL FROM:<>").await;
    c.cmd(&format!("RCPT TO:<{PLAIN}>")).await;
    c.cmd("DATA").await;
    // Keeps sending, slowly: each read comes in time, the whole transfer does not.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        c.send("Subject: slow\r\n").await;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(500), c.io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(_) => break String::new(),
            Err(_) => assert!(Instant::now() < deadline, "DATA never timed out"),
        }
    };
    assert!(
        reply.starts_with("421 4.4.2 Timeout during DATA"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn sessions_beyond_the_limit_wait_for_a_free_one() {
    let db = TestDb::new().await;
    let w = SmtpWorker::start(&db.url, "    maxSessions: 1\n").await;
    let mut first = connect(w.smtp).await;
    let tcp = tokio::net::TcpStream::connect(w.smtp).await.unwrap();
    let mut second = Client::new(tcp);
    let early = tokio::time::timeout(Duration::from_millis(300), second.reply()).await;
    assert!(
        early.is_err(),
        "greeted while the only session was busy: {early:?}"
    );
    assert_eq!(first.cmd("QUIT").await, "221 2.0.0 Bye");
    let greeting = second.reply().await.unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    let m = w.metrics().await;
    assert_eq!(
        common::metric_value(&m, "bounceops_smtp_sessions_active"),
        1.0
    );
}

#[tokio::test]
async fn database_down_gets_451_and_the_retry_is_recorded_once() {
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("z@example.net").await;
    let proxy = Proxy::start(server_addr(&db.url)).await;
    let w = SmtpWorker::start(&proxy.url_for(&db.url), "").await;
    let verp = w.verp(sub, None);
    let message = dsn("z@example.net", "5.1.1", "550 5.1.1 No such user");
    proxy.cut();
    let mut c = connect(w.smtp).await;
    c.cmd("EHLO mta").await;
    let replies = pipelined(&mut c, &[&verp], &message).await;
    assert!(replies[3].starts_with("451 4.3.0"), "{replies:?}");
    assert!(bounces_of(&db, sub_id).await.is_empty());
    proxy.restore();
    let replies = pipelined(&mut c, &[&verp], &message).await;
    assert!(replies[3].starts_with("250 "), "{replies:?}");
    let replies = pipelined(&mut c, &[&verp], &message).await;
    assert!(replies[3].starts_with("250 "), "{replies:?}");
    assert_eq!(bounces_of(&db, sub_id).await.len(), 1);
    assert_eq!(outcome(&w.metrics().await, "temporary_failure"), 1.0);
}

#[tokio::test]
async fn starttls_with_a_certificate_from_the_secret() {
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("t@example.net").await;
    let w = SmtpWorker::start(&db.url, "    tlsSecretName: mx-tls\n").await;
    let cert = std::fs::read(w.dir.path().join("secrets/mx-tls/tls.crt")).unwrap();
    let mut c = connect(w.smtp).await;
    assert!(c.cmd("EHLO mta").await.contains("STARTTLS"));
    // A command pipelined after STARTTLS in clear text must not run under TLS.
    c.send("STARTTLS\r\nNOOP\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("220 2.0.0"));

    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&cert) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = c.io.into_inner();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake with the Secret's certificate");
    let mut c = Client::new(tls);
    let ehlo = c.cmd("EHLO mta").await;
    assert!(
        ehlo.starts_with("250-"),
        "the NOOP sent in clear got no reply: {ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let verp = w.verp(sub, None);
    c.send(&format!("MAIL FROM:<>\r\nRCPT TO:<{verp}>\r\nDATA\r\n"))
        .await;
    for _ in 0..3 {
        c.reply().await.unwrap();
    }
    c.send(&format!(
        "{}.\r\n",
        dsn("t@example.net", "5.1.1", "550 unknown")
    ))
    .await;
    assert!(c.reply().await.unwrap().starts_with("250 "));
    assert_eq!(bounces_of(&db, sub_id).await.len(), 1);
}

#[tokio::test]
async fn only_crlf_dot_crlf_ends_a_message_so_a_bare_lf_cannot_smuggle_another() {
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("s@example.net").await;
    let (w, mut c) = greeted(&db).await;
    let verp = w.verp(sub, None);
    c.send(&format!("MAIL FROM:<>\r\nRCPT TO:<{verp}>\r\nDATA\r\n"))
        .await;
    for _ in 0..3 {
        c.reply().await.unwrap();
    }
    // A bare-LF "end of data" followed by a smuggled transaction, a NUL byte, then the
    // real end: one message, one reply.
    let smuggled = format!(
        "Subject: x\r\n\r\nhello\n.\nMAIL FROM:<>\r\nRCPT TO:<{verp}>\r\nDATA\r\n\0\r\n{}.\r\n",
        dsn("s@example.net", "5.1.1", "550 5.1.1 unknown")
    );
    c.send(&smuggled).await;
    let r = c.reply().await.unwrap();
    assert!(r.starts_with("250 "), "{r}");
    assert!(
        c.cmd("NOOP").await.starts_with("250 2.0.0 OK"),
        "no reply was left over"
    );
    assert_eq!(
        outcome(&w.metrics().await, "recorded") + outcome(&w.metrics().await, "not_bounce"),
        1.0
    );
    assert!(bounces_of(&db, sub_id).await.len() <= 1);
}

#[tokio::test]
async fn at_shutdown_an_idle_session_is_told_421_and_the_worker_stops() {
    let db = TestDb::new().await;
    let (w, mut c) = greeted(&db).await;
    let addr = w.smtp;
    let stopped = tokio::spawn(w.stop());
    assert_eq!(
        c.reply().await.as_deref(),
        Some("421 4.3.2 Shutting down, try again later")
    );
    assert_eq!(c.reply().await, None);
    tokio::time::timeout(REPLY_WITHIN, stopped)
        .await
        .expect("the worker stops in time")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the SMTP port is closed"
    );
}
