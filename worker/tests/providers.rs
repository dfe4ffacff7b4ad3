//! Provider webhooks end to end (DESIGN §4): a real Postgres, real signatures made with keys
//! generated here, SNS certificates served by a loopback HTTP server. Payloads come from
//! `fixtures/providers/`, shaped like each provider's documented samples.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bounce_worker::config::Settings;
use bounce_worker::secrets::SecretsDir;
use chrono::Utc;
use common::fixture_text::fixture_text as fixture;
use common::{Proxy, TestDb, server_addr, write_config};
use p256::pkcs8::EncodePublicKey;
use rsa::RsaPrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Harness

/// A worker on loopback whose secrets folder also holds the providers' secrets.
struct Worker {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Worker {
    async fn start(
        database_url: &str,
        providers_yaml: &str,
        secrets: &[(&str, &str, &str)],
    ) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("  providers:\n{providers_yaml}");
        let (config, secrets_dir) = write_config(dir.path(), database_url, &spec);
        for (name, key, value) in secrets {
            std::fs::create_dir_all(secrets_dir.join(name)).unwrap();
            std::fs::write(secrets_dir.join(name).join(key), format!("{value}\n")).unwrap();
        }
        let settings =
            Settings::load(&config, &SecretsDir::new(secrets_dir), None).expect("config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            bounce_worker::server::serve(&settings, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Worker {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// POSTs `body` to `/webhooks/service/<path>`; returns the status and the JSON answer.
    async fn post(&self, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("http://{}/webhooks/service/{path}", self.addr))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `n` subscribers named after the test; returns their addresses.
async fn subscribers(db: &TestDb, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..=n {
        let email = format!("{prefix}{i}@example.net");
        db.subscriber(&email).await;
        out.push(email);
    }
    out
}

/// (type, campaign_id, source) of every bounce of `email`.
async fn bounces(db: &TestDb, email: &str) -> Vec<(String, Option<i32>, String)> {
    sqlx::query_as(
        "SELECT b.type::text, b.campaign_id, b.source FROM bounces b
           JOIN subscribers s ON s.id = b.subscriber_id
          WHERE s.email = $1 ORDER BY b.id",
    )
    .bind(email)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(bounce_worker::providers::hmac::hmac_sha256(key, parts))
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn assert_refused(answer: &(u16, Value), check: &str) {
    assert_eq!(answer.0, 401, "{answer:?}");
    let message = answer.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(check), "{message:?} should name {check:?}");
}

// ---------------------------------------------------------------------------------------
// SES via SNS

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-bounces";
const CERT_PATH: &str = "/SimpleNotificationService-0123456789abcdef.pem";

/// A loopback stand-in for SNS: serves the signing certificate and counts subscription
/// confirmations, and requests for anything else (answered 404).
struct SnsHost {
    base: String,
    cert_fetches: Arc<AtomicUsize>,
    confirmations: Arc<AtomicUsize>,
    misses: Arc<AtomicUsize>,
}

impl SnsHost {
    async fn start(pem: String) -> SnsHost {
        let cert_fetches = Arc::new(AtomicUsize::new(0));
        let confirmations = Arc::new(AtomicUsize::new(0));
        let misses = Arc::new(AtomicUsize::new(0));
        let (f, c, m) = (cert_fetches.clone(), confirmations.clone(), misses.clone());
        let app = axum::Router::new()
            .route(
                CERT_PATH,
                axum::routing::get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let pem = pem.clone();
                    async move { pem }
                }),
            )
            .route(
                "/",
                axum::routing::get(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                    async { "<ConfirmSubscriptionResponse/>" }
                }),
            )
            .fallback(move || {
                m.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::NOT_FOUND }
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        SnsHost {
            base,
            cert_fetches,
            confirmations,
            misses,
        }
    }

    fn cert_url(&self) -> String {
        format!("{}{CERT_PATH}", self.base)
    }

    /// A certUrlPattern admitting this host only (the default admits AWS over https only).
    fn pattern(&self) -> String {
        format!(
            r"{}/SimpleNotificationService-[0-9a-f]+\.pem",
            regex::escape(&self.base)
        )
    }
}

fn rsa_key() -> RsaPrivateKey {
    // 2048 bits, as AWS uses: the worker refuses smaller moduli.
    RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap()
}

/// A self-signed certificate carrying `key`'s public half, as SNS's signing certificate.
fn certificate_pem(key: &RsaPrivateKey) -> String {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::der::pem::LineEnding;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let cert = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        Validity::from_now(Duration::from_secs(3600)).unwrap(),
        Name::from_str("CN=sns.us-east-1.amazonaws.test").unwrap(),
        spki,
        &signer,
    )
    .unwrap()
    .build::<rsa::pkcs1v15::Signature>()
    .unwrap();
    cert.to_pem(LineEnding::LF).unwrap()
}

/// Signs an SNS envelope as SNS does (written out here independently of the worker).
fn sns_sign(envelope: &mut Value, key: &RsaPrivateKey, version: u8) {
    let kind = envelope["Type"].as_str().unwrap().to_owned();
    let keys: &[&str] = if kind == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for k in keys {
        if let Some(v) = envelope.get(*k).and_then(Value::as_str) {
            text.push_str(&format!("{k}\n{v}\n"));
        }
    }
    let signature = match version {
        1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec(),
        _ => rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone())
            .sign(text.as_bytes())
            .to_vec(),
    };
    envelope["SignatureVersion"] = json!(version.to_string());
    envelope["Signature"] = json!(b64(&signature));
}

/// Now, as SNS writes its `Timestamp`.
fn sns_now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sns_notification(message: &str, cert_url: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": Uuid::new_v4().to_string(),
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": message,
        "Timestamp": sns_now(),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
    })
}

async fn post_sns(w: &Worker, envelope: &Value) -> (u16, Value) {
    let kind = envelope["Type"].as_str().unwrap().to_owned();
    w.post(
        "ses",
        &[
            ("x-amz-sns-message-type", kind),
            ("content-type", "text/plain; charset=UTF-8".into()),
        ],
        &envelope.to_string(),
    )
    .await
}

/// SES's bounce of the first two of `emails`, for a campaign nobody knows.
fn ses_bounce_of(emails: &[String]) -> String {
    fixture(
        "ses-bounce.json",
        &[
            ("EMAIL1", &emails[0]),
            ("EMAIL2", &emails[1]),
            ("CAMPAIGN", &Uuid::new_v4().to_string()),
        ],
    )
}

async fn ses_setup(db: &TestDb) -> (Worker, SnsHost, RsaPrivateKey) {
    let key = rsa_key();
    let host = SnsHost::start(certificate_pem(&key)).await;
    let yaml = format!(
        "    ses: {{enabled: true, topicArns: [\"{TOPIC}\"], certUrlPattern: '{}'}}\n",
        host.pattern()
    );
    (Worker::start(&db.url, &yaml, &[]).await, host, key)
}

#[tokio::test]
async fn ses_v1_and_v2_notifications_record_every_recipient_once() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "ses", 3).await;
    let (w, host, key) = ses_setup(&db).await;

    // Version 1 (SHA1withRSA): a permanent bounce of two recipients.
    let message = fixture(
        "ses-bounce.json",
        &[
            ("EMAIL1", &emails[0]),
            ("EMAIL2", &emails[1]),
            ("CAMPAIGN", &campaign.to_string()),
        ],
    );
    let mut bounce = sns_notification(&message, &host.cert_url());
    sns_sign(&mut bounce, &key, 1);
    let answer = post_sns(&w, &bounce).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    for email in &emails[..2] {
        assert_eq!(
            bounces(&db, email).await,
            vec![("hard".to_owned(), Some(campaign_id), "ses".to_owned())]
        );
    }

    // Version 2 (SHA256withRSA): a complaint from SES event publishing (eventType).
    let message = fixture(
        "ses-complaint-event.json",
        &[("EMAIL1", &emails[2]), ("CAMPAIGN", &campaign.to_string())],
    );
    let mut complaint = sns_notification(&message, &host.cert_url());
    sns_sign(&mut complaint, &key, 2);
    assert_eq!(post_sns(&w, &complaint).await.0, 200);
    assert_eq!(
        bounces(&db, &emails[2]).await,
        vec![("complaint".to_owned(), Some(campaign_id), "ses".to_owned())]
    );

    // SNS retries deliver the same MessageId: recorded once.
    assert_eq!(post_sns(&w, &bounce).await.0, 200);
    assert_eq!(post_sns(&w, &complaint).await.0, 200);
    assert_eq!(db.total_bounces().await, 3);

    // Deliveries are acknowledged and ignored.
    let mut delivery = sns_notification(
        r#"{"notificationType":"Delivery","mail":{"destination":["x@example.net"]},"delivery":{"recipients":["x@example.net"]}}"#,
        &host.cert_url(),
    );
    sns_sign(&mut delivery, &key, 2);
    assert_eq!(post_sns(&w, &delivery).await.0, 200);
    assert_eq!(db.total_bounces().await, 3);

    // The certificate was fetched once and then served from the cache.
    assert_eq!(host.cert_fetches.load(Ordering::SeqCst), 1);
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"bounceops_provider_duplicates_total{provider="ses"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"bounceops_provider_events_total{provider="ses",type="hard"} 2"#));
}

#[tokio::test]
async fn ses_forgeries_are_refused_and_write_nothing() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "sesf", 2).await;
    let (w, host, key) = ses_setup(&db).await;
    let message = ses_bounce_of(&emails);
    let mut good = sns_notification(&message, &host.cert_url());
    sns_sign(&mut good, &key, 2);

    // A tampered Message.
    let mut tampered = good.clone();
    tampered["Message"] = json!(message.replace("Permanent", "Transient"));
    assert_refused(&post_sns(&w, &tampered).await, "signature does not verify");

    // Signed by another key (the certificate is still the real one).
    let mut forged = sns_notification(&message, &host.cert_url());
    sns_sign(&mut forged, &rsa_key(), 1);
    assert_refused(&post_sns(&w, &forged).await, "signature does not verify");

    // A topic outside topicArns, correctly signed.
    let mut other_topic = sns_notification(&message, &host.cert_url());
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:other");
    sns_sign(&mut other_topic, &key, 2);
    assert_refused(&post_sns(&w, &other_topic).await, "topicArns");

    // Certificate URLs outside the pattern are never fetched.
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-0123.pem"
            .to_owned(),
        format!("{}/SimpleNotificationService-0123.pem?x=1", host.base),
        host.cert_url().replace("http://", "http://user@"),
        format!("{}/other.pem", host.base),
    ] {
        let mut bad = sns_notification(&message, &url);
        sns_sign(&mut bad, &key, 2);
        assert_refused(&post_sns(&w, &bad).await, "SigningCertURL");
    }
    assert_eq!(host.cert_fetches.load(Ordering::SeqCst), 1);

    // An allowed certificate URL that cannot be fetched now: 503, so SNS retries.
    let mut unreachable = sns_notification(
        &message,
        &format!("{}/SimpleNotificationService-ffff.pem", host.base),
    );
    sns_sign(&mut unreachable, &key, 2);
    let answer = post_sns(&w, &unreachable).await;
    assert_eq!(answer.0, 503, "{answer:?}");

    // The message-type header must be there and agree with the body.
    let answer = w.post("ses", &[], &good.to_string()).await;
    assert_refused(&answer, "x-amz-sns-message-type");
    let answer = w
        .post(
            "ses",
            &[("x-amz-sns-message-type", "SubscriptionConfirmation".into())],
            &good.to_string(),
        )
        .await;
    assert_refused(&answer, "does not match");

    // Not JSON at all.
    let answer = w
        .post(
            "ses",
            &[("x-amz-sns-message-type", "Notification".into())],
            "{",
        )
        .await;
    assert_eq!(answer.0, 400, "{answer:?}");

    assert_eq!(db.total_bounces().await + db.unmatched_count().await, 0);
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"bounceops_provider_signature_failures_total{check="signature does not verify",provider="ses"} 2"#),
        "{metrics}"
    );
    // The untouched message still goes through.
    assert_eq!(post_sns(&w, &good).await.0, 200);
    assert_eq!(db.total_bounces().await, 2);
}

/// A captured notification replayed later (or one dated in the future, or not dated) is
/// refused however well signed, as the other providers refuse old timestamps; what needs no
/// network (the signature version, the time) refuses before the certificate is fetched;
/// a certificate that cannot be fetched is not fetched again for a while.
#[tokio::test]
async fn ses_refuses_messages_out_of_time_and_checks_before_fetching() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "sest", 2).await;
    let (w, host, key) = ses_setup(&db).await;
    let message = ses_bounce_of(&emails);
    for (timestamp, check) in [
        (
            "2001-01-02T03:04:05.678Z",
            "signature timestamp outside the tolerance",
        ),
        (
            "2099-01-02T03:04:05.678Z",
            "signature timestamp outside the tolerance",
        ),
        ("not a time", "signature timestamp is not a time"),
    ] {
        let mut old = sns_notification(&message, &host.cert_url());
        old["Timestamp"] = json!(timestamp);
        sns_sign(&mut old, &key, 2);
        assert_refused(&post_sns(&w, &old).await, check);
    }
    assert_eq!(
        host.cert_fetches.load(Ordering::SeqCst),
        0,
        "no fetch for them"
    );

    let mut unknown = sns_notification(&message, &host.cert_url());
    sns_sign(&mut unknown, &key, 2);
    unknown["SignatureVersion"] = json!("3");
    assert_refused(
        &post_sns(&w, &unknown).await,
        "unsupported SignatureVersion",
    );
    assert_eq!(host.cert_fetches.load(Ordering::SeqCst), 0);

    let missing = format!("{}/SimpleNotificationService-0000.pem", host.base);
    for _ in 0..3 {
        let mut n = sns_notification(&message, &missing);
        sns_sign(&mut n, &key, 2);
        assert_eq!(post_sns(&w, &n).await.0, 503);
    }
    assert_eq!(
        host.misses.load(Ordering::SeqCst),
        1,
        "a failed fetch is remembered"
    );
    assert_eq!(db.total_bounces().await, 0);

    // A fresh message goes through, with the tolerance configurable.
    let mut fresh = sns_notification(&message, &host.cert_url());
    sns_sign(&mut fresh, &key, 1);
    assert_eq!(post_sns(&w, &fresh).await.0, 200);
    assert_eq!(db.total_bounces().await, 2);
    let strict = format!(
        "    ses: {{enabled: true, topicArns: [\"{TOPIC}\"], certUrlPattern: '{}', toleranceSeconds: 60}}\n",
        host.pattern()
    );
    let w = Worker::start(&db.url, &strict, &[]).await;
    let mut minutes_old = sns_notification(&message, &host.cert_url());
    let at = Utc::now() - chrono::Duration::seconds(120);
    minutes_old["Timestamp"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    sns_sign(&mut minutes_old, &key, 2);
    assert_refused(
        &post_sns(&w, &minutes_old).await,
        "signature timestamp outside the tolerance",
    );
}

#[tokio::test]
async fn ses_subscription_is_confirmed_through_the_verified_url() {
    let db = TestDb::new().await;
    let (w, host, key) = ses_setup(&db).await;
    let confirmation = |subscribe_url: String, kind: &str| {
        json!({
            "Type": kind,
            "MessageId": Uuid::new_v4().to_string(),
            "Token": "2336412f37fb687f5d51e6e2425c464de12884a6a2ff1e2d2b3ad2fe6b7c0b4a",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic. To confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url,
            "Timestamp": sns_now(),
            "SigningCertURL": host.cert_url(),
        })
    };
    let url = format!(
        "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f",
        host.base
    );
    for version in [1, 2] {
        let mut c = confirmation(url.clone(), "SubscriptionConfirmation");
        sns_sign(&mut c, &key, version);
        let answer = post_sns(&w, &c).await;
        assert_eq!(answer.0, 200, "{answer:?}");
    }
    assert_eq!(host.confirmations.load(Ordering::SeqCst), 2);

    // A tampered SubscribeURL breaks the signature; a signed one elsewhere is refused.
    let mut tampered = confirmation(url.clone(), "SubscriptionConfirmation");
    sns_sign(&mut tampered, &key, 2);
    tampered["SubscribeURL"] = json!(format!("{url}&extra=1"));
    assert_refused(&post_sns(&w, &tampered).await, "signature does not verify");
    let mut elsewhere = confirmation(
        "http://127.0.0.2:9/?Action=ConfirmSubscription".into(),
        "SubscriptionConfirmation",
    );
    sns_sign(&mut elsewhere, &key, 2);
    assert_refused(&post_sns(&w, &elsewhere).await, "SubscribeURL");
    assert_eq!(host.confirmations.load(Ordering::SeqCst), 2);

    // UnsubscribeConfirmation is acknowledged without calling anything.
    let mut bye = confirmation(url, "UnsubscribeConfirmation");
    sns_sign(&mut bye, &key, 2);
    assert_eq!(post_sns(&w, &bye).await.0, 200);
    assert_eq!(host.confirmations.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------
// SendGrid

struct SendgridKey(p256::ecdsa::SigningKey);

impl SendgridKey {
    fn new() -> SendgridKey {
        SendgridKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    fn public_b64(&self) -> String {
        b64(self
            .0
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes())
    }

    fn headers(&self, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
        let mut signed = timestamp.to_string().into_bytes();
        signed.extend_from_slice(body.as_bytes());
        let signature: p256::ecdsa::Signature = self.0.sign(&signed);
        vec![
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                b64(signature.to_der().as_bytes()),
            ),
            (
                "X-Twilio-Email-Event-Webhook-Timestamp",
                timestamp.to_string(),
            ),
            ("content-type", "application/json".into()),
        ]
    }
}

/// A worker with SendGrid enabled (tolerance 600 s), its key, and the batch fixture for
/// the four `emails` and `campaign`, its event ids starting with `id`.
async fn sendgrid_rig(
    db: &TestDb,
    emails: &[String],
    campaign: Uuid,
    id: &str,
) -> (Worker, SendgridKey, String) {
    let key = SendgridKey::new();
    let w = Worker::start(
        &db.url,
        "    sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}, toleranceSeconds: 600}\n",
        &[("sendgrid", "public-key", &key.public_b64())],
    )
    .await;
    let body = fixture(
        "sendgrid-batch.json",
        &[
            ("EMAIL1", &emails[0]),
            ("EMAIL2", &emails[1]),
            ("EMAIL3", &emails[2]),
            ("EMAIL4", &emails[3]),
            ("CAMPAIGN", &campaign.to_string()),
            ("ID", id),
        ],
    );
    (w, key, body)
}

#[tokio::test]
async fn sendgrid_signed_batch_recorded_once_and_forgeries_refused() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "sg", 4).await;
    let (w, key, body) = sendgrid_rig(&db, &emails, campaign, "sg-evt").await;
    let ts = now();

    let tampered = body.replace("5.1.1", "5.1.2");
    assert_refused(
        &w.post("sendgrid", &key.headers(ts, &body)[..], &tampered)
            .await,
        "signature does not verify",
    );
    let other = SendgridKey::new();
    assert_refused(
        &w.post("sendgrid", &other.headers(ts, &body), &body).await,
        "signature does not verify",
    );
    assert_refused(
        &w.post("sendgrid", &key.headers(ts - 3600, &body), &body)
            .await,
        "timestamp outside the tolerance",
    );
    assert_refused(&w.post("sendgrid", &[], &body).await, "missing");
    assert_eq!(db.total_bounces().await, 0);

    assert_eq!(
        w.post("sendgrid", &key.headers(ts, &body), &body).await.0,
        200
    );
    let expect = |t: &str, c: Option<i32>| vec![(t.to_owned(), c, "sendgrid".to_owned())];
    assert_eq!(
        bounces(&db, &emails[0]).await,
        expect("hard", Some(campaign_id))
    );
    assert_eq!(
        bounces(&db, &emails[1]).await,
        expect("soft", Some(campaign_id))
    );
    assert_eq!(bounces(&db, &emails[2]).await, expect("complaint", None));
    assert_eq!(bounces(&db, &emails[3]).await, expect("hard", None));

    // A retry of the whole batch (re-signed, as SendGrid does) records nothing new.
    let answer = w.post("sendgrid", &key.headers(now(), &body), &body).await;
    assert_eq!(answer.0, 200);
    assert_eq!(db.total_bounces().await, 4);
    assert!(
        w.metrics()
            .await
            .contains(r#"bounceops_provider_duplicates_total{provider="sendgrid"} 4"#)
    );

    // Valid signature, body that is not SendGrid's shape.
    let object = r#"{"event":"bounce"}"#;
    let answer = w
        .post("sendgrid", &key.headers(now(), object), object)
        .await;
    assert_eq!(answer.0, 400, "{answer:?}");
}

// ---------------------------------------------------------------------------------------
// Postmark

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{password}").as_bytes()))
}

/// A worker with Postmark enabled, its Basic credentials `postmark:s3cret`.
async fn postmark_worker(db: &TestDb) -> Worker {
    Worker::start(
        &db.url,
        "    postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}\n",
        &[("postmark", "credentials", "postmark:s3cret")],
    )
    .await
}

#[tokio::test]
async fn postmark_basic_auth_bounce_and_complaint() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "pm", 2).await;
    let w = postmark_worker(&db).await;
    let bounce = fixture(
        "postmark-bounce.json",
        &[
            ("EMAIL1", &emails[0]),
            ("CAMPAIGN", &campaign.to_string()),
            ("ID", "4323372036854775807"),
        ],
    );
    let complaint = fixture(
        "postmark-complaint.json",
        &[("EMAIL1", &emails[1]), ("ID", "42")],
    );
    let auth = |p: &str| vec![("authorization", basic("postmark", p))];

    assert_refused(
        &w.post("postmark", &[], &bounce).await,
        "missing Basic credentials",
    );
    assert_refused(
        &w.post("postmark", &auth("wrong"), &bounce).await,
        "Basic credentials do not match",
    );
    assert_eq!(db.total_bounces().await, 0);

    assert_eq!(w.post("postmark", &auth("s3cret"), &bounce).await.0, 200);
    assert_eq!(w.post("postmark", &auth("s3cret"), &complaint).await.0, 200);
    assert_eq!(w.post("postmark", &auth("s3cret"), &bounce).await.0, 200);
    assert_eq!(
        bounces(&db, &emails[0]).await,
        vec![("hard".to_owned(), Some(campaign_id), "postmark".to_owned())]
    );
    assert_eq!(
        bounces(&db, &emails[1]).await,
        vec![("complaint".to_owned(), None, "postmark".to_owned())]
    );
    // The reason reaches the stored meta, beside the record Postmark sent.
    let meta: Vec<(Value,)> = sqlx::query_as(
        "SELECT b.meta FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id
          WHERE s.email = ANY($1) ORDER BY s.email",
    )
    .bind(emails.clone())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(meta[0].0["reason"], "userunknown");
    assert_eq!(meta[0].0["status"], "5.1.1");
    assert_eq!(meta[0].0["Type"], "HardBounce");
    assert_eq!(meta[1].0["reason"], "feedback");
    // A soft type and a record type that is not a failure.
    let soft = bounce
        .replace("HardBounce", "SoftBounce")
        .replace("4323372036854775807", "7");
    assert_eq!(w.post("postmark", &auth("s3cret"), &soft).await.0, 200);
    let delivery = r#"{"RecordType":"Delivery","ID":1,"Recipient":"x@example.net"}"#;
    assert_eq!(w.post("postmark", &auth("s3cret"), delivery).await.0, 200);
    assert_eq!(
        db.total_bounces().await,
        2,
        "the soft bounce of a blocklisted subscriber is dropped, as in listmonk"
    );
    assert_eq!(w.post("postmark", &auth("s3cret"), "[1]").await.0, 400);
}

/// The provider's own event is kept as it came, before the adapter added its findings
/// (`reason`, `status`) to the bounce's meta, and served as JSON.
#[tokio::test]
async fn a_provider_bounce_serves_its_original_event() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "pmo", 1).await;
    let w = postmark_worker(&db).await;
    let bounce = fixture(
        "postmark-bounce.json",
        &[
            ("EMAIL1", &emails[0]),
            ("CAMPAIGN", &Uuid::new_v4().to_string()),
            ("ID", "77"),
        ],
    );
    let auth = vec![("authorization", basic("postmark", "s3cret"))];
    assert_eq!(w.post("postmark", &auth, &bounce).await.0, 200);
    let (id, meta): (i32, Value) = sqlx::query_as("SELECT id, meta FROM bounces")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        meta["reason"], "userunknown",
        "the adapter's findings are in meta"
    );

    let r = w
        .client
        .get(format!("http://{}/api/bounces/{id}/message", w.addr))
        .header(
            "Authorization",
            format!("token {}:{}", common::USER, common::TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    let sent: Value = serde_json::from_str(&bounce).unwrap();
    assert_eq!(served, sent, "the event as Postmark sent it");
    assert!(served.get("reason").is_none());
}

// ---------------------------------------------------------------------------------------
// Forward Email

#[tokio::test]
async fn forwardemail_hmac_of_raw_body() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "fe", 2).await;
    let w = Worker::start(
        &db.url,
        "    forwardemail: {enabled: true, keySecretRef: {name: forwardemail, key: key}}\n",
        &[("forwardemail", "key", "fe-webhook-key")],
    )
    .await;
    let body = fixture(
        "forwardemail-bounce.json",
        &[
            ("EMAIL1", &emails[0]),
            ("CAMPAIGN", &campaign.to_string()),
            ("ID", "fe-1"),
        ],
    );
    let sig =
        |key: &[u8], body: &str| vec![("X-Webhook-Signature", hmac_hex(key, &[body.as_bytes()]))];

    let tampered = body.replace("\"recipient\"", "\"block\"");
    assert_refused(
        &w.post("forwardemail", &sig(b"fe-webhook-key", &body), &tampered)
            .await,
        "signature does not match",
    );
    assert_refused(
        &w.post("forwardemail", &sig(b"other-key", &body), &body)
            .await,
        "signature does not match",
    );
    assert_refused(
        &w.post("forwardemail", &[], &body).await,
        "missing X-Webhook-Signature",
    );
    assert_eq!(db.total_bounces().await, 0);

    for _ in 0..2 {
        let answer = w
            .post("forwardemail", &sig(b"fe-webhook-key", &body), &body)
            .await;
        assert_eq!(answer.0, 200, "{answer:?}");
    }
    assert_eq!(
        bounces(&db, &emails[0]).await,
        vec![(
            "hard".to_owned(),
            Some(campaign_id),
            "forwardemail".to_owned()
        )]
    );
    let soft = fixture(
        "forwardemail-bounce.json",
        &[("EMAIL1", &emails[1]), ("CAMPAIGN", "none"), ("ID", "fe-2")],
    )
    .replace("\"category\": \"recipient\"", "\"category\": \"network\"");
    assert_eq!(
        w.post("forwardemail", &sig(b"fe-webhook-key", &soft), &soft)
            .await
            .0,
        200
    );
    assert_eq!(
        bounces(&db, &emails[1]).await,
        vec![("soft".to_owned(), None, "forwardemail".to_owned())]
    );
}

// ---------------------------------------------------------------------------------------
// Mailgun

fn mailgun_body(
    email: &str,
    campaign: &str,
    id: &str,
    severity: &str,
    ts: i64,
    token: &str,
    key: &[u8],
) -> String {
    let ts = ts.to_string();
    let signature = hmac_hex(key, &[ts.as_bytes(), token.as_bytes()]);
    fixture(
        "mailgun-failed.json",
        &[
            ("EMAIL1", email),
            ("CAMPAIGN", campaign),
            ("ID", id),
            ("SEVERITY", severity),
            ("TIMESTAMP", &ts),
            ("TOKEN", token),
            ("SIGNATURE", &signature),
        ],
    )
}

#[tokio::test]
async fn mailgun_signature_freshness_and_single_use_tokens_across_replicas() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "mg", 3).await;
    let yaml =
        "    mailgun: {enabled: true, signingKeySecretRef: {name: mailgun, key: signing-key}}\n";
    let secrets = [("mailgun", "signing-key", "key-mailgun-test")];
    let a = Worker::start(&db.url, yaml, &secrets).await;
    let b = Worker::start(&db.url, yaml, &secrets).await;
    let key = b"key-mailgun-test";
    let c = campaign.to_string();
    let json_ct = [("content-type", "application/json".to_owned())];

    let stale = mailgun_body(
        &emails[0],
        &c,
        "ev-1",
        "permanent",
        now() - 3600,
        "tok-stale",
        key,
    );
    assert_refused(
        &a.post("mailgun", &json_ct, &stale).await,
        "timestamp outside the tolerance",
    );
    let wrong = mailgun_body(
        &emails[0],
        &c,
        "ev-1",
        "permanent",
        now(),
        "tok-wrong",
        b"other",
    );
    assert_refused(
        &a.post("mailgun", &json_ct, &wrong).await,
        "signature does not match",
    );
    let no_block = r#"{"event-data":{"event":"failed"}}"#;
    assert_refused(
        &a.post("mailgun", &json_ct, no_block).await,
        "missing signature block",
    );
    assert_eq!(db.total_bounces().await, 0);

    let good = mailgun_body(&emails[0], &c, "ev-1", "permanent", now(), "tok-1", key);
    assert_eq!(a.post("mailgun", &json_ct, &good).await.0, 200);
    assert_eq!(
        bounces(&db, &emails[0]).await,
        vec![("hard".to_owned(), Some(campaign_id), "mailgun".to_owned())]
    );
    // The same delivery again (a retry) passes, on either replica, and records nothing new.
    assert_eq!(b.post("mailgun", &json_ct, &good).await.0, 200);
    // The captured signature with another body: refused on the other replica too.
    let forged = good
        .replace(&emails[0], &emails[1])
        .replace("ev-1", "ev-forged");
    assert_refused(
        &b.post("mailgun", &json_ct, &forged).await,
        "signature token already used",
    );
    assert_eq!(db.total_bounces().await, 1);

    let temporary = mailgun_body(&emails[2], &c, "ev-2", "temporary", now(), "tok-2", key);
    assert_eq!(b.post("mailgun", &json_ct, &temporary).await.0, 200);
    assert_eq!(
        bounces(&db, &emails[2]).await,
        vec![("soft".to_owned(), Some(campaign_id), "mailgun".to_owned())]
    );
    let complained = mailgun_body(&emails[1], &c, "ev-3", "permanent", now(), "tok-3", key)
        .replace("\"failed\"", "\"complained\"");
    assert_eq!(a.post("mailgun", &json_ct, &complained).await.0, 200);
    assert_eq!(bounces(&db, &emails[1]).await[0].0, "complaint");
}

// ---------------------------------------------------------------------------------------
// Lettermint

#[tokio::test]
async fn lettermint_timestamped_hmac() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "lm", 3).await;
    let w = Worker::start(
        &db.url,
        "    lettermint: {enabled: true, signingKeySecretRef: {name: lettermint, key: secret}}\n",
        &[("lettermint", "secret", "lm-secret")],
    )
    .await;
    let body = |email: &str, event: &str, id: &str| {
        fixture(
            "lettermint-bounce.json",
            &[
                ("EMAIL1", email),
                ("CAMPAIGN", &campaign.to_string()),
                ("ID", id),
                ("EVENT", event),
            ],
        )
    };
    let sig = |key: &[u8], t: i64, body: &str| {
        let t = t.to_string();
        vec![(
            "X-Lettermint-Signature",
            format!(
                "t={t},v1={}",
                hmac_hex(key, &[t.as_bytes(), b".", body.as_bytes()])
            ),
        )]
    };
    let hard = body(&emails[0], "message.hard_bounced", "lm-1");
    assert_refused(
        &w.post(
            "lettermint",
            &sig(b"lm-secret", now(), &hard),
            &hard.replace("hard_bounced", "soft_bounced"),
        )
        .await,
        "signature does not match",
    );
    assert_refused(
        &w.post("lettermint", &sig(b"nope", now(), &hard), &hard)
            .await,
        "signature does not match",
    );
    assert_refused(
        &w.post("lettermint", &sig(b"lm-secret", now() - 301, &hard), &hard)
            .await,
        "timestamp outside the tolerance",
    );
    assert_eq!(db.total_bounces().await, 0);
    for _ in 0..2 {
        assert_eq!(
            w.post("lettermint", &sig(b"lm-secret", now(), &hard), &hard)
                .await
                .0,
            200
        );
    }
    let soft = body(&emails[1], "message.soft_bounced", "lm-2");
    let spam = body(&emails[2], "message.spam_complaint", "lm-3");
    let test = body(&emails[2], "webhook.test", "lm-4");
    for b in [&soft, &spam, &test] {
        assert_eq!(
            w.post("lettermint", &sig(b"lm-secret", now(), b), b)
                .await
                .0,
            200
        );
    }
    let types: Vec<String> = futures::future::join_all(emails.iter().map(|e| bounces(&db, e)))
        .await
        .into_iter()
        .map(|b| {
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].1, Some(campaign_id));
            b[0].0.clone()
        })
        .collect();
    assert_eq!(types, ["hard", "soft", "complaint"]);
}

// ---------------------------------------------------------------------------------------
// Azure Event Grid

#[tokio::test]
async fn azure_validation_handshake_secret_and_reports() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "az", 3).await;
    let w = Worker::start(
        &db.url,
        "    azure: {enabled: true, sharedSecretRef: {name: azure, key: secret}}\n",
        &[("azure", "secret", "az-shared")],
    )
    .await;
    let validation = fixture("azure-validation.json", &[]);
    let handshake = [("aeg-event-type", "SubscriptionValidation".to_owned())];
    assert_refused(
        &w.post("azure", &handshake, &validation).await,
        "missing shared secret",
    );
    let answer = w
        .post("azure?code=az-shared", &handshake, &validation)
        .await;
    assert_eq!(answer.0, 200);
    assert_eq!(
        answer.1,
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );

    let reports = fixture(
        "azure-delivery-reports.json",
        &[
            ("EMAIL1", &emails[0]),
            ("EMAIL2", &emails[1]),
            ("EMAIL3", &emails[2]),
            ("ID", "az-evt"),
        ],
    );
    let notification = [("aeg-event-type", "Notification".to_owned())];
    assert_refused(
        &w.post("azure?code=wrong", &notification, &reports).await,
        "shared secret does not match",
    );
    let mut header = notification.to_vec();
    header.push(("X-Listmonk-Webhook-Secret", "wrong".into()));
    assert_refused(
        &w.post("azure", &header, &reports).await,
        "shared secret does not match",
    );
    assert_eq!(db.total_bounces().await, 0);

    header[1].1 = "az-shared".into();
    assert_eq!(w.post("azure", &header, &reports).await.0, 200);
    assert_eq!(
        w.post("azure?code=az-shared", &notification, &reports)
            .await
            .0,
        200
    );
    assert_eq!(bounces(&db, &emails[0]).await[0].0, "hard");
    assert_eq!(bounces(&db, &emails[1]).await[0].0, "soft");
    assert!(
        bounces(&db, &emails[2]).await.is_empty(),
        "Delivered is no bounce"
    );
    assert_eq!(db.total_bounces().await, 2);
}

// ---------------------------------------------------------------------------------------
// Resend (Svix)

fn svix_headers(
    secret_b64: &str,
    id: &str,
    ts: i64,
    body: &str,
    extra_sig: &str,
) -> Vec<(&'static str, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let ts = ts.to_string();
    let mac = bounce_worker::providers::hmac::hmac_sha256(
        &key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body.as_bytes()],
    );
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", ts),
        ("svix-signature", format!("{extra_sig}v1,{}", b64(&mac))),
    ]
}

#[tokio::test]
async fn resend_svix_signatures() {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "rs", 3).await;
    let secret = b64(b"resend-svix-secret-bytes-0123456");
    let w = Worker::start(
        &db.url,
        "    resend: {enabled: true, signingSecretRef: {name: resend, key: signing-secret}}\n",
        &[("resend", "signing-secret", &format!("whsec_{secret}"))],
    )
    .await;
    let body = |email: &str, bounce_type: &str| {
        fixture(
            "resend-bounced.json",
            &[
                ("EMAIL1", email),
                ("CAMPAIGN", &campaign.to_string()),
                ("BOUNCE_TYPE", bounce_type),
            ],
        )
    };
    let hard = body(&emails[0], "Permanent");
    assert_refused(
        &w.post(
            "resend",
            &svix_headers(&secret, "msg_1", now(), &hard, ""),
            &hard.replace("Permanent", "Transient"),
        )
        .await,
        "signature does not match",
    );
    let other = b64(b"another-secret-another-secret-01");
    assert_refused(
        &w.post(
            "resend",
            &svix_headers(&other, "msg_1", now(), &hard, ""),
            &hard,
        )
        .await,
        "signature does not match",
    );
    assert_refused(
        &w.post(
            "resend",
            &svix_headers(&secret, "msg_1", now() - 600, &hard, ""),
            &hard,
        )
        .await,
        "timestamp outside the tolerance",
    );
    assert_refused(&w.post("resend", &[], &hard).await, "missing svix-id");
    assert_eq!(db.total_bounces().await, 0);

    // Several signatures in the header (a rotation): one valid is enough.
    let rotating = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,ignored ";
    assert_eq!(
        w.post(
            "resend",
            &svix_headers(&secret, "msg_1", now(), &hard, rotating),
            &hard
        )
        .await
        .0,
        200
    );
    // Svix retries keep svix-id: recorded once.
    assert_eq!(
        w.post(
            "resend",
            &svix_headers(&secret, "msg_1", now(), &hard, ""),
            &hard
        )
        .await
        .0,
        200
    );
    assert_eq!(
        bounces(&db, &emails[0]).await,
        vec![("hard".to_owned(), Some(campaign_id), "resend".to_owned())]
    );
    let soft = body(&emails[1], "Transient");
    assert_eq!(
        w.post(
            "resend",
            &svix_headers(&secret, "msg_2", now(), &soft, ""),
            &soft
        )
        .await
        .0,
        200
    );
    let complaint = body(&emails[2], "Permanent").replace("email.bounced", "email.complained");
    assert_eq!(
        w.post(
            "resend",
            &svix_headers(&secret, "msg_3", now(), &complaint, ""),
            &complaint
        )
        .await
        .0,
        200
    );
    assert_eq!(bounces(&db, &emails[1]).await[0].0, "soft");
    assert_eq!(bounces(&db, &emails[2]).await[0].0, "complaint");
}

// ---------------------------------------------------------------------------------------
// Brevo, Mailjet, SparkPost: credentials in the webhook URL

async fn token_provider_case(
    provider: &str,
    fixture_name: &str,
    expected: [&str; 3],
    campaign_on_first: bool,
) {
    let db = TestDb::new().await;
    let (campaign_id, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, provider, 4).await;
    let yaml = format!(
        "    {provider}: {{enabled: true, tokenSecretRef: {{name: {provider}, key: token}}, credentialsSecretRef: {{name: {provider}, key: credentials}}}}\n"
    );
    let w = Worker::start(
        &db.url,
        &yaml,
        &[
            (provider, "token", "tok-123"),
            (provider, "credentials", "hook:pa55"),
        ],
    )
    .await;
    let body = fixture(
        fixture_name,
        &[
            ("EMAIL1", &emails[0]),
            ("EMAIL2", &emails[1]),
            ("EMAIL3", &emails[2]),
            ("EMAIL4", &emails[3]),
            ("CAMPAIGN", &campaign.to_string()),
            ("ID", "evt-"),
        ],
    );
    assert_refused(
        &w.post(provider, &[], &body).await,
        "missing Basic credentials",
    );
    assert_refused(
        &w.post(&format!("{provider}?token=nope"), &[], &body).await,
        "token does not match",
    );
    assert_refused(
        &w.post(provider, &[("authorization", basic("hook", "nope"))], &body)
            .await,
        "Basic credentials do not match",
    );
    assert_eq!(db.total_bounces().await, 0);

    assert_eq!(
        w.post(&format!("{provider}?token=tok-123"), &[], &body)
            .await
            .0,
        200
    );
    assert_eq!(
        w.post(provider, &[("authorization", basic("hook", "pa55"))], &body)
            .await
            .0,
        200
    );
    assert_eq!(
        w.post(
            provider,
            &[("authorization", "Bearer tok-123".into())],
            &body
        )
        .await
        .0,
        200
    );
    for (email, t) in emails.iter().zip(expected) {
        let b = bounces(&db, email).await;
        assert_eq!(b.len(), 1, "{provider} {email}: {b:?}");
        assert_eq!(b[0].0, t, "{provider} {email}");
        assert_eq!(b[0].2, provider);
    }
    if campaign_on_first {
        assert_eq!(bounces(&db, &emails[0]).await[0].1, Some(campaign_id));
    }
    assert!(
        bounces(&db, &emails[3]).await.is_empty(),
        "{provider}: non-failure events are ignored"
    );
    assert_eq!(db.total_bounces().await, 3);
    assert_eq!(
        w.post(&format!("{provider}?token=tok-123"), &[], "\"x\"")
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn brevo_token_or_basic() {
    token_provider_case(
        "brevo",
        "brevo-events.json",
        ["hard", "soft", "complaint"],
        true,
    )
    .await;
}

#[tokio::test]
async fn mailjet_token_or_basic() {
    token_provider_case(
        "mailjet",
        "mailjet-events.json",
        ["hard", "soft", "complaint"],
        true,
    )
    .await;
}

#[tokio::test]
async fn sparkpost_token_or_basic() {
    token_provider_case(
        "sparkpost",
        "sparkpost-events.json",
        ["hard", "soft", "complaint"],
        true,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Routing, configuration, outages

#[tokio::test]
async fn providers_not_enabled_are_404() {
    let db = TestDb::new().await;
    let w = Worker::start(
        &db.url,
        "    postmark: {enabled: false, credentialsSecretRef: {name: postmark, key: credentials}}\n",
        &[],
    )
    .await;
    for p in ["postmark", "sendgrid", "ses", "nonsense"] {
        let answer = w.post(p, &[], "{}").await;
        assert_eq!(answer.0, 404, "{p}: {answer:?}");
        assert!(
            answer.1["message"]
                .as_str()
                .unwrap()
                .contains("not enabled")
        );
    }
}

#[tokio::test]
async fn database_outage_is_503_so_the_provider_retries() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "out", 1).await;
    let proxy = Proxy::start(server_addr(&db.url)).await;
    let w = Worker::start(
        &proxy.url_for(&db.url),
        "    postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}\n",
        &[("postmark", "credentials", "u:p")],
    )
    .await;
    let body = fixture(
        "postmark-bounce.json",
        &[("EMAIL1", &emails[0]), ("CAMPAIGN", "x"), ("ID", "1")],
    );
    let auth = [("authorization", basic("u", "p"))];
    proxy.cut();
    let answer = w.post("postmark", &auth, &body).await;
    assert_eq!(answer.0, 503, "{answer:?}");
    proxy.restore();
    assert_eq!(w.post("postmark", &auth, &body).await.0, 200);
    assert_eq!(db.total_bounces().await, 1);
}

#[test]
fn enabled_provider_without_secret_is_a_config_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, field) in [
        (
            "    sendgrid: {enabled: true}\n",
            "spec.providers.sendgrid.publicKeySecretRef",
        ),
        (
            "    mailgun: {enabled: true, signingKeySecretRef: {name: mg, key: nope}}\n",
            "spec.providers.mailgun.signingKeySecretRef",
        ),
        ("    brevo: {enabled: true}\n", "spec.providers.brevo"),
        (
            "    ses: {enabled: true, certUrlPattern: '(['}\n",
            "spec.providers.ses.certUrlPattern",
        ),
        (
            "    sendgrid: {enabled: true, publicKeySecretRef: {name: api, key: credentials}}\n",
            "spec.providers.sendgrid.publicKeySecretRef",
        ),
    ] {
        let (config, secrets) = write_config(
            dir.path(),
            "postgres://u@127.0.0.1/db",
            &format!("  providers:\n{yaml}"),
        );
        let err = Settings::load(&config, &SecretsDir::new(secrets), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{yaml}: {err}");
        assert!(!err.contains("t0ken"), "a secret leaked into {err}");
    }
}

/// `examples/bounceconfig-providers.yaml` loads once its secrets exist (made up here).
#[test]
fn example_bounceconfig_loads() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, key: &str, value: &str| {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join(key), value).unwrap();
    };
    write(
        "listmonk-db",
        "url",
        "postgres://listmonk@127.0.0.1/listmonk",
    );
    write("bounce-api", "credentials", "api:token");
    write("sendgrid", "public-key", &SendgridKey::new().public_b64());
    write("postmark", "credentials", "postmark:password");
    write("forwardemail", "key", "key");
    write("mailgun", "signing-key", "key");
    write("lettermint", "signing-secret", "secret");
    write("azure", "shared-secret", "secret");
    write(
        "resend",
        "signing-secret",
        &format!("whsec_{}", b64(b"0123456789abcdef")),
    );
    for p in ["brevo", "mailjet", "sparkpost"] {
        write(p, "token", "token");
        write(p, "credentials", "user:password");
    }
    let settings = Settings::load(
        std::path::Path::new(&format!("{root}/examples/bounceconfig-providers.yaml")),
        &SecretsDir::new(dir.path()),
        None,
    )
    .expect("the example loads");
    let names: Vec<_> = settings.providers.names().collect();
    assert_eq!(names.len(), 11, "{names:?}");
}

// ---------------------------------------------------------------------------------------
// Poison events: one event that Postgres would refuse never blocks its batch

/// `text` with its first event poisoned: a `meta` key and value holding NUL and a lone
/// surrogate, a number beyond f64, and NUL and a lone surrogate in the first server reply
/// (`550 5.1.1 ...`). Postgres refuses NUL in text and jsonb; serde_json refuses lone
/// surrogates and numbers it cannot hold.
fn poisoned(text: &str) -> String {
    let member = r#""note\u0000": "NUL \u0000 and a lone surrogate \ud800", "huge": -1e400, "#;
    let at = match text.find("\"event-data\": {") {
        Some(i) => i + "\"event-data\": {".len(),
        None => text.find('{').unwrap() + 1,
    };
    let out = format!("{}{member}{}", &text[..at], &text[at..]);
    out.replacen("550 5.1.1", "550 5.1.1 \\u0000\\ud800", 1)
}

/// Rows of `source` (bounces and unmatched) whose meta holds U+FFFD, where the poison was.
async fn replaced(db: &TestDb, source: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM bounces WHERE source = $1 AND strpos(meta::text, chr(65533)) > 0)
              + (SELECT COUNT(*) FROM bounceops.unmatched WHERE source = $1 AND strpos(meta::text, chr(65533)) > 0)",
    )
    .bind(source)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Every provider but SES (below), each posting its fixture with one poisoned event: 200,
/// every event of the batch recorded, the poison stored as U+FFFD. Before, NUL made
/// Postgres refuse the whole batch (500, every retry) and a lone surrogate made it
/// unreadable (400).
#[tokio::test]
async fn one_poisoned_event_never_blocks_its_batch() {
    let db = TestDb::new().await;
    let (_, campaign) = db.campaign("c").await;
    let sg = SendgridKey::new();
    let svix = b64(b"resend-svix-secret-bytes-0123456");
    let mut yaml = String::from(
        "    sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}}\n\
         \x20   postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}\n\
         \x20   forwardemail: {enabled: true, keySecretRef: {name: forwardemail, key: key}}\n\
         \x20   mailgun: {enabled: true, signingKeySecretRef: {name: mailgun, key: signing-key}}\n\
         \x20   lettermint: {enabled: true, signingKeySecretRef: {name: lettermint, key: secret}}\n\
         \x20   azure: {enabled: true, sharedSecretRef: {name: azure, key: secret}}\n\
         \x20   resend: {enabled: true, signingSecretRef: {name: resend, key: signing-secret}}\n",
    );
    for p in ["brevo", "mailjet", "sparkpost"] {
        yaml.push_str(&format!(
            "    {p}: {{enabled: true, tokenSecretRef: {{name: {p}, key: token}}}}\n"
        ));
    }
    let resend_secret = format!("whsec_{svix}");
    let w = Worker::start(
        &db.url,
        &yaml,
        &[
            ("sendgrid", "public-key", &sg.public_b64()),
            ("postmark", "credentials", "postmark:s3cret"),
            ("forwardemail", "key", "fe-key"),
            ("mailgun", "signing-key", "mg-key"),
            ("lettermint", "secret", "lm-secret"),
            ("azure", "secret", "az-shared"),
            ("resend", "signing-secret", &resend_secret),
            ("brevo", "token", "tok"),
            ("mailjet", "token", "tok"),
            ("sparkpost", "token", "tok"),
        ],
    )
    .await;
    let c = campaign.to_string();
    // (provider, fixture, failure events in it)
    for (provider, fixture_name, failures) in [
        ("sendgrid", "sendgrid-batch.json", 4),
        ("postmark", "postmark-bounce.json", 1),
        ("forwardemail", "forwardemail-bounce.json", 1),
        ("mailgun", "mailgun-failed.json", 1),
        ("lettermint", "lettermint-bounce.json", 1),
        ("azure", "azure-delivery-reports.json", 2),
        ("resend", "resend-bounced.json", 1),
        ("brevo", "brevo-events.json", 3),
        ("mailjet", "mailjet-events.json", 3),
        ("sparkpost", "sparkpost-events.json", 3),
    ] {
        let emails = subscribers(&db, &format!("{provider}-p"), 4).await;
        let ts = now().to_string();
        let token = format!("tok-{provider}");
        let signature = hmac_hex(b"mg-key", &[ts.as_bytes(), token.as_bytes()]);
        let body = poisoned(&fixture(
            fixture_name,
            &[
                ("EMAIL1", &emails[0]),
                ("EMAIL2", &emails[1]),
                ("EMAIL3", &emails[2]),
                ("EMAIL4", &emails[3]),
                ("CAMPAIGN", &c),
                // A number: Postmark's ID is one.
                ("ID", "7001"),
                ("SEVERITY", "permanent"),
                ("TIMESTAMP", &ts),
                ("TOKEN", &token),
                ("SIGNATURE", &signature),
                ("EVENT", "message.hard_bounced"),
                ("BOUNCE_TYPE", "Permanent"),
            ],
        ));
        let (path, headers) = match provider {
            "sendgrid" => (provider.to_owned(), sg.headers(now(), &body)),
            "postmark" => (
                provider.to_owned(),
                vec![("authorization", basic("postmark", "s3cret"))],
            ),
            "forwardemail" => (
                provider.to_owned(),
                vec![(
                    "X-Webhook-Signature",
                    hmac_hex(b"fe-key", &[body.as_bytes()]),
                )],
            ),
            "mailgun" => (provider.to_owned(), Vec::new()),
            "lettermint" => {
                let mac = hmac_hex(b"lm-secret", &[ts.as_bytes(), b".", body.as_bytes()]);
                (
                    provider.to_owned(),
                    vec![("X-Lettermint-Signature", format!("t={ts},v1={mac}"))],
                )
            }
            "azure" => (
                "azure?code=az-shared".to_owned(),
                vec![("aeg-event-type", "Notification".to_owned())],
            ),
            "resend" => (
                provider.to_owned(),
                svix_headers(&svix, "msg_p", now(), &body, ""),
            ),
            _ => (format!("{provider}?token=tok"), Vec::new()),
        };
        let answer = w.post(&path, &headers, &body).await;
        assert_eq!(answer.0, 200, "{provider}: {answer:?}");
        let recorded: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM bounces WHERE source = $1)
                  + (SELECT COUNT(*) FROM bounceops.unmatched WHERE source = $1)",
        )
        .bind(provider)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(recorded, failures, "{provider}: every event of the batch");
        assert!(
            replaced(&db, provider).await >= 1,
            "{provider}: the poison is stored as U+FFFD"
        );
    }
}

/// SES: one recipient's reply holds NUL; both recipients of the notification are recorded.
#[tokio::test]
async fn ses_poisoned_reply_is_stored_and_its_neighbour_recorded() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "sesp", 2).await;
    let (w, host, key) = ses_setup(&db).await;
    let message = poisoned(&ses_bounce_of(&emails));
    let mut n = sns_notification(&message, &host.cert_url());
    sns_sign(&mut n, &key, 2);
    let answer = post_sns(&w, &n).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    assert_eq!(db.total_bounces().await, 2);
    assert!(replaced(&db, "ses").await >= 1);
}

/// What the database refuses however it is sent (a LATIN1 database and a Japanese reply):
/// the event is parked as a dead letter, the rest of SendGrid's batch is recorded, and
/// SendGrid is answered 200, so that it does not retry the batch for 72 hours; its retry
/// records nothing twice and parks nothing twice.
#[tokio::test]
async fn an_event_the_database_refuses_is_parked_and_its_batch_recorded() {
    let db = TestDb::latin1().await;
    let (_, campaign) = db.campaign("c").await;
    let emails = subscribers(&db, "dl", 4).await;
    let (w, key, body) = sendgrid_rig(&db, &emails, campaign, "sg-dl").await;
    let body = body.replacen("550 5.1.1 user unknown", "550 5.1.1 宛先不明", 1);
    for _ in 0..2 {
        let answer = w.post("sendgrid", &key.headers(now(), &body), &body).await;
        assert_eq!(answer.0, 200, "{answer:?}");
    }
    assert!(bounces(&db, &emails[0]).await.is_empty(), "the refused one");
    for email in &emails[1..] {
        assert_eq!(bounces(&db, email).await.len(), 1, "{email}");
    }
    let parked: Vec<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT source, reason, item FROM bounceops.dead_letters")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].0, "sendgrid");
    assert!(parked[0].1.starts_with("22P05"), "{}", parked[0].1);
    let item: Value = serde_json::from_slice(&parked[0].2).unwrap();
    assert_eq!(item["email"], emails[0].as_str());
    assert_eq!(item["meta"]["diagnostic"], "550 5.1.1 宛先不明");
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"bounceops_dead_letters_total{source="sendgrid"} 1"#),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------
// Verify before reading: what the head refuses, the body never costs

/// Sends a POST head announcing `length` bytes of body and `sent` of them, then keeps the
/// connection open without sending the rest; returns the stream, to read the answer from.
async fn stalled_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &str,
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/service/{path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{headers}content-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

/// The status line's code of the answer on `s`, if one comes within `within`.
async fn status_of(s: &mut tokio::net::TcpStream, within: Duration) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(within, s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A request whose credentials (or signature headers) are missing is answered at once,
/// without its body: before, the worker read the whole body first, and a sender that never
/// finished it held the request until the 30 s deadline.
#[tokio::test]
async fn a_refused_head_is_answered_before_the_body_is_read() {
    let db = TestDb::new().await;
    let w = Worker::start(
        &db.url,
        "    postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}\n    sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}}\n",
        &[
            ("postmark", "credentials", "u:p"),
            ("sendgrid", "public-key", &SendgridKey::new().public_b64()),
        ],
    )
    .await;
    for (path, headers) in [
        ("postmark", ""),
        ("postmark", "authorization: Basic d3Jvbmc6d3Jvbmc=\r\n"),
        ("sendgrid", ""),
        // A captured signature replayed an hour later: refused by its timestamp.
        (
            "sendgrid",
            &*format!(
                "x-twilio-email-event-webhook-signature: MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz/C+/xlT3PohvKvGF3ii5vm5y2xP/ugADvGuBJG/A=\r\nx-twilio-email-event-webhook-timestamp: {}\r\n",
                now() - 3600
            ),
        ),
    ] {
        let mut s = stalled_post(w.addr, path, headers, 1 << 20, 10).await;
        assert_eq!(
            status_of(&mut s, Duration::from_secs(5)).await,
            Some(401),
            "{path} {headers:?}"
        );
    }
}

/// Bodies that must be read to be verified (Mailgun's signature is inside them) share a
/// budget (16 MiB by default): senders that never finish theirs cannot make the worker
/// hold more. Past it a request is answered 503 (retry later) after 2 s; once they are
/// gone, a signed request goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_bodies_share_a_bounded_budget() {
    let db = TestDb::new().await;
    let emails = subscribers(&db, "budget", 1).await;
    let w = Worker::start(
        &db.url,
        "    mailgun: {enabled: true, signingKeySecretRef: {name: mailgun, key: signing-key}}\n",
        &[("mailgun", "signing-key", "mg-key")],
    )
    .await;
    // 17 senders of 1 MiB that never finish: 16 fit, whichever they are, and one is
    // answered 503 after its 2 s wait; the others are still waiting for their bodies.
    let mut stalled = Vec::new();
    for _ in 0..17 {
        stalled.push(stalled_post(w.addr, "mailgun", "", 1 << 20, 1000).await);
    }
    let started = std::time::Instant::now();
    let answers = futures::future::join_all(
        stalled
            .iter_mut()
            .map(|s| status_of(s, Duration::from_secs(6))),
    )
    .await;
    let refused: Vec<_> = answers.iter().flatten().collect();
    assert_eq!(refused, [&503], "{answers:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    drop(stalled);
    let body = mailgun_body(
        &emails[0],
        &Uuid::new_v4().to_string(),
        "ev-b",
        "permanent",
        now(),
        "tok-b",
        b"mg-key",
    );
    let ok = async {
        loop {
            let answer = w.post("mailgun", &[], &body).await;
            if answer.0 != 503 {
                return answer;
            }
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), ok)
        .await
        .unwrap();
    assert_eq!(answer.0, 200, "{answer:?}");
}
