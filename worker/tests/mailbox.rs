//! Mailbox scanning against a real dovecot (POP3 and IMAP, plain, TLS, STARTTLS) and a
//! real Postgres: what is recorded, what is removed, what is left alone, and how failures
//! (bad credentials, a dropped connection, a second scanner) behave.

mod common;
mod mailbox_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bounce_worker::ingest::Ingest;
use bounce_worker::mailbox::scan::{self, Deps, Summary};
use bounce_worker::mailbox::{
    Fetched, MailboxConfig, MailboxMetrics, ScanError, Scanners, Session,
};
use bounce_worker::metrics::Metrics;
use bounce_worker::rules::Rules;
use bounce_worker::store::mailbox as state;
use bounceops_api::{MailboxProtocol, TlsMode};
use common::TestDb;
use mailbox_support::*;
use tokio::sync::watch;

const POP3: MailboxProtocol = MailboxProtocol::Pop3;
const IMAP: MailboxProtocol = MailboxProtocol::Imap;

fn deps(db: &TestDb) -> Deps {
    let metrics = Metrics::new();
    Deps {
        store: db.store(),
        ingest: Ingest::start(db.store(), Arc::new(Rules::default()), metrics.clone(), 1),
        mailbox_metrics: MailboxMetrics::register(metrics.registry()).unwrap(),
        metrics,
        downloads: scan::downloads_budget(&[]),
    }
}

async fn scan(m: &MailboxConfig, deps: &Deps) -> Result<Summary, ScanError> {
    let (_stop, stopped) = watch::channel(false);
    scan::scan(m, deps, &stopped).await
}

async fn bounce_rows(db: &TestDb) -> Vec<(String, String, String, Option<i32>)> {
    sqlx::query_as(
        "SELECT s.email, b.type::text, b.source, b.campaign_id
         FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id ORDER BY s.email",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Bounces of every shape are recorded and removed; everything else stays, untouched,
/// and is not read again.
async fn records_bounces_and_leaves_the_rest(protocol: MailboxProtocol) {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (carol, carol_uuid) = db.subscriber("carol@example.net").await;
    let (dave, _) = db.subscriber("dave@example.net").await;
    let (amelie, _) = db.subscriber("amelie.roux@example.net").await;
    // The X-Listmonk-Subscriber header of the DSN fixture below names her.
    sqlx::query("UPDATE subscribers SET uuid = $1 WHERE id = $2")
        .bind(uuid::Uuid::parse_str("3f2b8c1e-7d4a-4c9b-a1e2-5b6c7d8e9f01").unwrap())
        .bind(amelie)
        .execute(&db.pool)
        .await
        .unwrap();
    let (campaign, campaign_uuid) = db.campaign("november").await;

    // Found by listmonk's headers although the report names a forwarding address.
    dovecot.deliver(
        USER,
        &listmonk_bounce(
            "carol.forward@other.example",
            "5.1.1",
            Some(carol_uuid),
            Some(campaign_uuid),
        ),
    );
    // No headers: found by the recipient address; transient, so soft.
    dovecot.deliver(
        USER,
        &listmonk_bounce("dave@example.net", "4.2.2", None, None),
    );
    // The classifier's fixtures: a Sendmail DSN whose listmonk headers name her and a
    // campaign this database lacks (so no campaign), and an ARF complaint for nobody we know.
    dovecot.deliver(USER, &fixture("sendmail-dsn-user-unknown.eml"));
    dovecot.deliver(USER, &fixture("arf-abuse-complaint.eml"));
    let keep = [
        human_reply(),
        newsletter(),
        vacation(),
        naming_too_many("dave@example.net"),
    ];
    for m in &keep {
        dovecot.deliver(USER, m);
    }
    let mut expected_left = keep.to_vec();
    expected_left.sort();

    let mailbox = dovecot.mailbox("bounces", protocol, TlsMode::None);
    let deps = deps(&db);
    let summary = scan(&mailbox, &deps).await.expect("scan");
    assert_eq!(
        (summary.read, summary.removed, summary.kept, summary.events),
        (8, 4, 4, 4),
        "{summary:?}"
    );

    assert_eq!(
        dovecot.messages(USER),
        expected_left,
        "only non-bounces remain"
    );
    assert_eq!(
        bounce_rows(&db).await,
        vec![
            (
                "amelie.roux@example.net".into(),
                "hard".into(),
                "mailbox:bounces".into(),
                None
            ),
            (
                "carol@example.net".into(),
                "hard".into(),
                "mailbox:bounces".into(),
                Some(campaign)
            ),
            (
                "dave@example.net".into(),
                "soft".into(),
                "mailbox:bounces".into(),
                None
            ),
        ]
    );
    assert_eq!(db.status(carol).await.as_deref(), Some("blocklisted"));
    assert_eq!(db.status(amelie).await.as_deref(), Some("blocklisted"));
    assert_eq!(db.status(dave).await.as_deref(), Some("enabled"));
    let unmatched: (String, String) = sqlx::query_as("SELECT email, type FROM bounceops.unmatched")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        unmatched,
        (
            "erik.lindqvist@mailbox-example.net".into(),
            "complaint".into()
        )
    );
    if protocol == IMAP {
        // Read with BODY.PEEK: what is left in place is not marked as read.
        for name in dovecot.cur_names(USER) {
            let flags = name.rsplit(":2,").next().unwrap_or("");
            assert!(!flags.contains('S'), "{name} was marked \\Seen");
        }
    }
    let m = &deps.mailbox_metrics;
    assert_eq!(
        m.messages.with_label_values(&["bounces", "bounce"]).get(),
        3
    );
    assert_eq!(
        m.messages
            .with_label_values(&["bounces", "complaint"])
            .get(),
        1
    );
    assert_eq!(
        m.messages
            .with_label_values(&["bounces", "autoreply"])
            .get(),
        1
    );
    assert_eq!(
        m.messages
            .with_label_values(&["bounces", "too-many-recipients"])
            .get(),
        1
    );
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM bounceops.mailbox_kept ORDER BY kind")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        ["autoreply", "too-many-recipients", "unknown", "unknown"]
    );
    assert_eq!(m.scans.with_label_values(&["bounces", "ok"]).get(), 1);
    assert_eq!(m.removed.with_label_values(&["bounces"]).get(), 4);
    assert_eq!(
        m.scan_duration
            .with_label_values(&["bounces"])
            .get_sample_count(),
        1
    );

    // The kept messages are remembered: the next scan downloads nothing.
    let again = scan(&mailbox, &deps).await.expect("second scan");
    assert_eq!(again.read, 0, "{again:?}");
    assert_eq!(dovecot.messages(USER), expected_left);
    assert_eq!(db.total_bounces().await, 3);

    // A new bounce arriving later is picked up; the kept ones still are not re-read.
    dovecot.deliver(
        USER,
        &listmonk_bounce("dave@example.net", "4.2.2", None, None),
    );
    let third = scan(&mailbox, &deps).await.expect("third scan");
    assert_eq!((third.read, third.removed), (1, 1), "{third:?}");
    assert_eq!(db.bounce_count(dave).await, 2);
}

#[tokio::test]
async fn pop3_scan_records_bounces_and_leaves_the_rest() {
    records_bounces_and_leaves_the_rest(POP3).await;
}

#[tokio::test]
async fn imap_scan_records_bounces_and_leaves_the_rest() {
    records_bounces_and_leaves_the_rest(IMAP).await;
}

/// One bounce and one reply over an encrypted session.
async fn one_bounce_over(protocol: MailboxProtocol, tls: TlsMode) {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("erin@example.net").await;
    dovecot.deliver(
        USER,
        &listmonk_bounce("erin@example.net", "5.1.1", None, None),
    );
    dovecot.deliver(USER, &human_reply());
    let mailbox = dovecot.mailbox("secure", protocol, tls);
    let summary = scan(&mailbox, &deps(&db)).await.expect("scan");
    assert_eq!((summary.removed, summary.kept), (1, 1), "{summary:?}");
    assert_eq!(db.bounce_count(id).await, 1);
    assert_eq!(dovecot.messages(USER).len(), 1);
    let log = dovecot.log();
    assert!(log.contains("TLS"), "dovecot saw no TLS session: {log}");
}

#[tokio::test]
async fn pop3_over_implicit_tls() {
    one_bounce_over(POP3, TlsMode::Tls).await;
}

#[tokio::test]
async fn pop3_over_stls() {
    one_bounce_over(POP3, TlsMode::Starttls).await;
}

#[tokio::test]
async fn imap_over_implicit_tls() {
    one_bounce_over(IMAP, TlsMode::Tls).await;
}

#[tokio::test]
async fn imap_over_starttls() {
    one_bounce_over(IMAP, TlsMode::Starttls).await;
}

/// With `moveTo`, a recorded bounce goes to that folder (created on first use) instead
/// of being deleted; the rest stays in INBOX; a second scan moves nothing again.
async fn moves_recorded_bounces(dovecot: Dovecot, server_can_move: bool) {
    let db = TestDb::new().await;
    let (erin, _) = db.subscriber("erin@example.net").await;
    let bounce = listmonk_bounce("erin@example.net", "5.1.1", None, None);
    let reply = human_reply();
    dovecot.deliver(USER, &bounce);
    dovecot.deliver(USER, &reply);
    let mut mailbox = dovecot.mailbox("moving", IMAP, TlsMode::None);
    mailbox.move_to = Some("Processed".into());
    let deps = deps(&db);
    match Session::open(&mailbox).await.expect("IMAP session") {
        Session::Imap(s) => assert_eq!(s.can_move(), server_can_move, "MOVE capability"),
        Session::Pop3(_) => unreachable!("an IMAP mailbox"),
    }

    let summary = scan(&mailbox, &deps).await.expect("scan");
    assert_eq!((summary.removed, summary.kept), (1, 1), "{summary:?}");
    assert_eq!(db.bounce_count(erin).await, 1);
    assert_eq!(dovecot.messages(USER), vec![reply]);
    let moved = dovecot.folder_messages(USER, "Processed");
    assert_eq!(moved.len(), 1, "one message in the moveTo folder");
    // dovecot may add its own header lines; the body is the bounce's.
    assert!(
        moved[0].ends_with(&bounce),
        "the moved message is the bounce"
    );

    let again = scan(&mailbox, &deps).await.expect("second scan");
    assert_eq!((again.read, again.removed), (0, 0), "{again:?}");
    assert_eq!(dovecot.folder_messages(USER, "Processed").len(), 1);
    assert_eq!(db.bounce_count(erin).await, 1);
}

#[tokio::test]
async fn imap_moves_recorded_bounces_with_move() {
    moves_recorded_bounces(Dovecot::start(), true).await;
}

#[tokio::test]
async fn imap_moves_recorded_bounces_by_copy_where_the_server_cannot_move() {
    // The capabilities dovecot advertises after login, without MOVE: the scanner must
    // fall back to COPY and delete.
    moves_recorded_bounces(
        Dovecot::start_with(
            "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE UIDPLUS",
        ),
        false,
    )
    .await;
}

#[tokio::test]
async fn untrusted_certificate_fails_unless_verification_is_skipped() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    dovecot.deliver(USER, &listmonk_bounce("x@example.net", "5.1.1", None, None));
    let deps = deps(&db);
    for protocol in [POP3, IMAP] {
        let mut mailbox = dovecot.mailbox("strict", protocol, TlsMode::Tls);
        mailbox.tls_skip_verify = false;
        let err = scan(&mailbox, &deps)
            .await
            .expect_err("self-signed certificate");
        assert!(
            matches!(&err, ScanError::Connect(m) if m.contains("TLS handshake")),
            "{err}"
        );
    }
    let m = &deps.mailbox_metrics;
    assert_eq!(
        m.connection_failures.with_label_values(&["strict"]).get(),
        2
    );
    assert_eq!(
        m.scans
            .with_label_values(&["strict", "connect_error"])
            .get(),
        2
    );
    assert_eq!(dovecot.messages(USER).len(), 1);
}

#[tokio::test]
async fn bad_credentials_are_a_clear_error_and_a_metric() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    dovecot.deliver(USER, &listmonk_bounce("x@example.net", "5.1.1", None, None));
    let deps = deps(&db);
    for protocol in [POP3, IMAP] {
        let mut mailbox = dovecot.mailbox("wrong", protocol, TlsMode::None);
        mailbox.credentials = (USER.into(), bounce_worker::mailbox::Password::new("nope"));
        let err = scan(&mailbox, &deps).await.expect_err("wrong password");
        assert!(matches!(err, ScanError::Auth(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("login refused"), "{text}");
        assert!(!text.contains("nope"), "the password leaked into {text}");
    }
    let m = &deps.mailbox_metrics;
    assert_eq!(m.auth_failures.with_label_values(&["wrong"]).get(), 2);
    assert_eq!(m.scans.with_label_values(&["wrong", "auth_error"]).get(), 2);
    assert_eq!(dovecot.messages(USER).len(), 1);
    assert_eq!(db.unmatched_count().await, 0);
}

#[tokio::test]
async fn unreachable_server_is_a_connection_failure() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // nothing listens once the listener is dropped
    let mailbox = mailbox_at("gone", POP3, TlsMode::None, port);
    let deps = deps(&db);
    let err = scan(&mailbox, &deps).await.expect_err("nothing listens");
    assert!(matches!(err, ScanError::Connect(_)), "{err:?}");
    assert_eq!(
        deps.mailbox_metrics
            .connection_failures
            .with_label_values(&["gone"])
            .get(),
        1
    );
}

/// Soft bounces, one per subscriber: a bounce counted twice would show as a second row.
async fn soft_bounces(db: &TestDb, dovecot: &Dovecot, n: usize) -> Vec<i32> {
    let mut ids = Vec::new();
    for i in 0..n {
        let email = format!("soft{i}@example.net");
        ids.push(db.subscriber(&email).await.0);
        dovecot.deliver(USER, &listmonk_bounce(&email, "4.2.2", None, None));
    }
    ids
}

async fn each_counted_once(db: &TestDb, ids: &[i32]) {
    for &id in ids {
        assert_eq!(db.bounce_count(id).await, 1, "subscriber {id}");
    }
    assert_eq!(db.total_bounces().await, ids.len() as i64);
}

/// The server's answers stop part-way through the second batch: the scan fails, nothing
/// is lost, and the next scan finishes the job without counting anything twice.
async fn dropped_mid_scan(protocol: MailboxProtocol) {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let ids = soft_bounces(&db, &dovecot, 120).await;
    dovecot.deliver(USER, &human_reply());
    let direct = dovecot.mailbox("flaky", protocol, TlsMode::None);
    let size: usize = dovecot.messages(USER).iter().map(Vec::len).sum();
    let breaker = Breaker::start(direct.port, size * 6 / 10).await;
    let mut broken = direct.clone();
    broken.port = breaker.port;
    let deps = deps(&db);

    let err = scan(&broken, &deps)
        .await
        .expect_err("the connection drops");
    assert!(matches!(err, ScanError::Protocol(_)), "{err:?}");
    let recorded = db.total_bounces().await;
    assert!(
        recorded >= scan::BATCH as i64 && recorded < 120,
        "the first batch is committed, the rest not: {recorded}"
    );
    let left = dovecot.messages(USER).len();
    match protocol {
        // POP3 deletes only at QUIT, which never came.
        MailboxProtocol::Pop3 => assert_eq!(left, 121),
        // IMAP expunges per committed batch.
        MailboxProtocol::Imap => assert_eq!(left as i64, 121 - recorded),
    }

    let summary = scan(&direct, &deps).await.expect("scan after the drop");
    assert_eq!(summary.kept, 1, "{summary:?}");
    each_counted_once(&db, &ids).await;
    assert_eq!(dovecot.messages(USER), vec![human_reply_left(&dovecot)]);
    let claimed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.processed_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(claimed, 120);
}

/// The one message left, whatever its bytes: the reply delivered by the test.
fn human_reply_left(dovecot: &Dovecot) -> Vec<u8> {
    let left = dovecot.messages(USER);
    assert_eq!(left.len(), 1);
    assert!(String::from_utf8_lossy(&left[0]).contains("Re: Our November issue"));
    left[0].clone()
}

#[tokio::test]
async fn pop3_connection_dropped_mid_scan_loses_nothing() {
    dropped_mid_scan(POP3).await;
}

#[tokio::test]
async fn imap_connection_dropped_mid_scan_loses_nothing() {
    dropped_mid_scan(IMAP).await;
}

#[tokio::test]
async fn a_second_scanner_skips_a_mailbox_being_scanned() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let ids = soft_bounces(&db, &dovecot, 3).await;
    let mailbox = dovecot.mailbox("shared", POP3, TlsMode::None);
    let deps = deps(&db);

    // Another replica holds the mailbox.
    let other = state::ScanLock::try_take(&db.store(), &mailbox.key)
        .await
        .unwrap()
        .expect("lock is free");
    let skipped = scan(&mailbox, &deps).await.expect("skip is not an error");
    assert!(skipped.locked);
    assert_eq!(skipped.read, 0);
    assert_eq!(dovecot.messages(USER).len(), 3);
    assert_eq!(db.total_bounces().await, 0);
    assert_eq!(
        deps.mailbox_metrics
            .scans
            .with_label_values(&["shared", "locked"])
            .get(),
        1
    );
    other.release().await;

    // Two scanners at the same moment: each bounce is recorded once, whoever wins.
    let (a, b) = tokio::join!(scan(&mailbox, &deps), scan(&mailbox, &deps));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.removed + b.removed, 3, "{a:?} {b:?}");
    each_counted_once(&db, &ids).await;
    assert!(dovecot.messages(USER).is_empty());
}

#[tokio::test]
async fn at_most_max_messages_per_scan() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let ids = soft_bounces(&db, &dovecot, 5).await;
    let mut mailbox = dovecot.mailbox("small", IMAP, TlsMode::None);
    mailbox.max_messages_per_scan = 2;
    let deps = deps(&db);
    for left in [3, 1, 0] {
        let summary = scan(&mailbox, &deps).await.unwrap();
        assert_eq!(dovecot.messages(USER).len(), left, "{summary:?}");
    }
    each_counted_once(&db, &ids).await;
}

#[tokio::test]
async fn each_mailbox_is_scanned_on_its_own_interval() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (a, _) = db.subscriber("a@example.net").await;
    let (b, _) = db.subscriber("b@example.net").await;
    let mut first = dovecot.mailbox("first", POP3, TlsMode::None);
    first.scan_interval = Duration::from_secs(1);
    let mut second = dovecot.mailbox("second", IMAP, TlsMode::None);
    second.scan_interval = Duration::from_secs(1);
    second.credentials = (
        "other".into(),
        bounce_worker::mailbox::Password::new("other-pw"),
    );
    let deps = deps(&db);
    let scanners = Scanners::start(vec![first, second], deps.clone());

    // Delivered once both first scans are done: only a scheduled, later scan finds them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scanned = |name: &str| {
        deps.mailbox_metrics
            .scans
            .with_label_values(&[name, "ok"])
            .get()
    };
    while scanned("first") < 1 || scanned("second") < 1 {
        assert!(Instant::now() < deadline, "the first scans did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dovecot.deliver(USER, &listmonk_bounce("a@example.net", "5.1.1", None, None));
    dovecot.deliver(
        "other",
        &listmonk_bounce("b@example.net", "5.1.1", None, None),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.bounce_count(a).await + db.bounce_count(b).await < 2 {
        assert!(
            Instant::now() < deadline,
            "scheduled scans recorded nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    scanners.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stop waits for the interval"
    );
    for name in ["first", "second"] {
        assert!(scanned(name) >= 2, "{name} was scanned once only");
    }
    assert!(dovecot.messages(USER).is_empty());
    assert!(dovecot.messages("other").is_empty());
}

/// The classifier runs off the async threads, and a panic in it costs one message.
#[tokio::test]
async fn a_message_that_panics_the_classifier_costs_only_itself_off_the_async_threads() {
    // Debug builds of mail-parser 0.11.9 panic on this message (a `debug_assert!` found by
    // the fuzzer); release builds classify it. Either way the scan goes on.
    let poison = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../classify/fuzz/regressions/mail-parser-0.11.9-debug-assert.eml"
    ))
    .unwrap();
    // This test's runtime has one thread, this one, which runs every task: a panic on any
    // other thread comes from the blocking pool.
    let async_thread = std::thread::current().id();
    let panicked_on = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = panicked_on.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.lock().unwrap().push(std::thread::current().id());
        default_hook(info);
    }));

    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("x@example.net").await;
    dovecot.deliver(USER, &poison);
    dovecot.deliver(USER, &listmonk_bounce("x@example.net", "5.1.1", None, None));
    let mailbox = dovecot.mailbox("poison", POP3, TlsMode::None);
    let summary = scan(&mailbox, &deps(&db)).await.expect("the scan survives");
    let _ = std::panic::take_hook();
    assert_eq!(summary.read, 2, "{summary:?}");
    assert_eq!(db.bounce_count(id).await, 1);
    let panicked_on = panicked_on.lock().unwrap().clone();
    assert_eq!(
        panicked_on.len(),
        1,
        "the classifier panics on this message in a debug build"
    );
    assert_ne!(
        panicked_on[0], async_thread,
        "the classifier ran on the async thread"
    );
}

/// 300 KiB: over the smallest `maxMessageBytes`, which the tests below set.
const LARGE: usize = 300 << 10;

fn oversized_count(deps: &Deps, mailbox: &str) -> u64 {
    deps.mailbox_metrics
        .messages
        .with_label_values(&[mailbox, scan::OVERSIZED])
        .get()
}

/// A message over `maxMessageBytes` is not downloaded: it stays where it is, counts once
/// as `oversized`, and every other message is processed; later scans skip it.
async fn oversized_message_is_left_in_place(protocol: MailboxProtocol) {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let mut ids = soft_bounces(&db, &dovecot, 2).await;
    dovecot.deliver_large(USER, LARGE);
    ids.push(db.subscriber("late@example.net").await.0);
    dovecot.deliver(
        USER,
        &listmonk_bounce("late@example.net", "5.1.1", None, None),
    );
    let mut mailbox = dovecot.mailbox("large", protocol, TlsMode::None);
    mailbox.max_message_bytes = 256 << 10;
    let deps = deps(&db);

    let summary = scan(&mailbox, &deps).await.expect("scan");
    assert_eq!(
        (
            summary.read,
            summary.removed,
            summary.kept,
            summary.oversized
        ),
        (3, 3, 0, 1),
        "{summary:?}"
    );
    each_counted_once(&db, &ids).await;
    let left = dovecot.message_sizes(USER, None);
    assert!(
        left.len() == 1 && left[0] as usize >= LARGE,
        "the large message stays: {left:?}"
    );
    assert_eq!(oversized_count(&deps, "large"), 1);
    let kept = state::kept(&db.store(), &mailbox.key).await.unwrap();
    assert_eq!(kept.len(), 1, "remembered: {kept:?}");

    let again = scan(&mailbox, &deps).await.expect("second scan");
    assert_eq!((again.read, again.oversized), (0, 0), "{again:?}");
    assert_eq!(oversized_count(&deps, "large"), 1, "counted once");
    assert_eq!(dovecot.message_sizes(USER, None), left);
}

#[tokio::test]
async fn pop3_oversized_message_is_left_in_place_and_counted_once() {
    oversized_message_is_left_in_place(POP3).await;
}

#[tokio::test]
async fn imap_oversized_message_is_left_in_place_and_counted_once() {
    oversized_message_is_left_in_place(IMAP).await;
}

#[tokio::test]
async fn imap_oversized_message_is_moved_to_move_to() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let ids = soft_bounces(&db, &dovecot, 2).await;
    dovecot.deliver_large(USER, LARGE);
    let mut mailbox = dovecot.mailbox("large", IMAP, TlsMode::None);
    mailbox.max_message_bytes = 256 << 10;
    mailbox.move_to = Some("Processed".into());
    let deps = deps(&db);

    let summary = scan(&mailbox, &deps).await.expect("scan");
    assert_eq!(
        (summary.read, summary.removed, summary.oversized),
        (2, 2, 1),
        "{summary:?}"
    );
    each_counted_once(&db, &ids).await;
    assert!(dovecot.messages(USER).is_empty());
    let moved = dovecot.message_sizes(USER, Some("Processed"));
    assert_eq!(
        moved.len(),
        3,
        "the bounces and the large message: {moved:?}"
    );
    assert!(moved[2] as usize >= LARGE, "{moved:?}");
    assert_eq!(oversized_count(&deps, "large"), 1);
    assert!(
        state::kept(&db.store(), &mailbox.key)
            .await
            .unwrap()
            .is_empty()
    );

    let again = scan(&mailbox, &deps).await.expect("second scan");
    assert_eq!((again.read, again.oversized), (0, 0), "{again:?}");
    assert_eq!(oversized_count(&deps, "large"), 1, "counted once");
}

/// The downloads budget goes by the sizes the server lists; a batch keeps bodies only until
/// they pass the room it was given (the first always), so a server that sends more than it
/// lists cannot make a batch hold more. Here a room smaller than one message, as from a
/// server listing a tenth of what it sends: one message is kept, and the rest are there
/// for the next fetch, whole.
async fn a_batch_keeps_bodies_only_up_to_its_room(protocol: MailboxProtocol) {
    let dovecot = Dovecot::start();
    for who in ["a", "b", "c"] {
        dovecot.deliver(
            USER,
            &listmonk_bounce(&format!("{who}@example.net"), "5.1.1", None, None),
        );
    }
    let mailbox = dovecot.mailbox("room", protocol, TlsMode::None);
    let mut session = Session::open(&mailbox).await.unwrap();
    let listed = session.list().await.unwrap();
    let handles: Vec<u32> = listed.iter().map(|l| l.handle).collect();
    assert_eq!(handles.len(), 3);
    let whole = |got: &[(u32, Fetched)]| -> Vec<u32> {
        got.iter()
            .map(|(h, f)| match f {
                Fetched::Whole(body) if body.len() > 100 => *h,
                other => panic!("message {h}: {other:?}"),
            })
            .collect()
    };

    let first = session.fetch(&handles, 10).await.unwrap();
    assert_eq!(whole(&first), handles[..1]);
    let rest = session.fetch(&handles[1..], u64::MAX).await.unwrap();
    assert_eq!(whole(&rest), handles[1..]);
}

#[tokio::test]
async fn pop3_a_batch_keeps_bodies_only_up_to_its_room() {
    a_batch_keeps_bodies_only_up_to_its_room(POP3).await;
}

#[tokio::test]
async fn imap_a_batch_keeps_bodies_only_up_to_its_room() {
    a_batch_keeps_bodies_only_up_to_its_room(IMAP).await;
}
