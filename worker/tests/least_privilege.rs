//! The database rights docs/listmonk.md ("The database role") gives, on a real Postgres: its
//! SQL is run as written (role and database names made unique), then `migrate` and the
//! workers run as that role. Every pod's init container runs `migrate`, so it must succeed
//! with only the rights a migrated worker has; the workers must do all of listmonk's
//! bounce processing (each action, the bounce API, the export) with them.

mod common;

use std::process::Command;

use bounceops_tests::markdown;
use common::{TOKEN, TestWorker, USER, admin_url};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const LISTMONK_TABLES: &str = include_str!("../sql/listmonk_standalone.sql");

/// The ```sql block of docs/listmonk.md whose first line is `-- {title}`.
fn documented_sql(title: &str) -> String {
    markdown::fenced_blocks(&bounceops_tests::read("docs/listmonk.md"))
        .into_iter()
        .filter(|b| b.lang == "sql")
        .map(|b| b.text)
        .find(|b| b.lines().next() == Some(&format!("-- {title}")))
        .unwrap_or_else(|| panic!("docs/listmonk.md has no sql block titled -- {title}"))
}

fn url(role: &str, db: &str) -> String {
    let mut u = url::Url::parse(&admin_url()).unwrap();
    u.set_username(role).unwrap();
    u.set_password(Some("CHANGE-ME")).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

async fn connect(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// listmonk's database as listmonk makes it: owned by listmonk's role, its tables too, and
/// three subscribers on a list.
struct Listmonk {
    db: String,
    owner: String,
    admin: PgPool,
    /// Connected to the new database as the superuser.
    here: PgPool,
}

impl Listmonk {
    async fn new() -> Listmonk {
        let id = Uuid::new_v4().simple().to_string();
        let (db, owner) = (format!("bounceops_lp_{id}"), format!("listmonk_{id}"));
        let admin = connect(&admin_url()).await;
        sqlx::raw_sql(format!("CREATE ROLE {owner} LOGIN PASSWORD 'CHANGE-ME'").as_str())
            .execute(&admin)
            .await
            .unwrap();
        sqlx::raw_sql(format!("CREATE DATABASE {db} OWNER {owner}").as_str())
            .execute(&admin)
            .await
            .unwrap();
        let as_owner = connect(&url(&owner, &db)).await;
        sqlx::raw_sql(LISTMONK_TABLES)
            .execute(&as_owner)
            .await
            .expect("listmonk's tables");
        sqlx::raw_sql(
            "INSERT INTO lists (uuid, name, type) VALUES (gen_random_uuid(), 'news', 'public');
                 INSERT INTO subscribers (uuid, email, name) VALUES
                   (gen_random_uuid(), 'hard@example.com', 'h'),
                   (gen_random_uuid(), 'soft@example.com', 's'),
                   (gen_random_uuid(), 'complaint@example.com', 'c');
                 INSERT INTO subscriber_lists (subscriber_id, list_id, status)
                   SELECT s.id, l.id, 'confirmed' FROM subscribers s, lists l;",
        )
        .execute(&as_owner)
        .await
        .unwrap();
        as_owner.close().await;
        let here = {
            let mut u = url::Url::parse(&admin_url()).unwrap();
            u.set_path(&format!("/{db}"));
            connect(u.as_str()).await
        };
        Listmonk {
            db,
            owner,
            admin,
            here,
        }
    }

    /// A documented block, with the documentation's names replaced by this test's.
    fn sql(&self, title: &str, role: &str) -> String {
        documented_sql(title)
            .replace("DATABASE listmonk", &format!("DATABASE {}", self.db))
            .replace(" listmonk;", &format!(" {};", self.owner))
            .replace("ROLE bounceops ", &format!("ROLE {role} "))
            .replace(
                "AUTHORIZATION bounceops;",
                &format!("AUTHORIZATION {role};"),
            )
            .replace(" TO bounceops;", &format!(" TO {role};"))
    }

    async fn drop(self, roles: &[&str]) {
        self.here.close().await;
        sqlx::raw_sql(format!("DROP DATABASE {} WITH (FORCE)", self.db).as_str())
            .execute(&self.admin)
            .await
            .unwrap();
        for role in roles.iter().chain([&self.owner.as_str()]) {
            sqlx::raw_sql(format!("DROP ROLE {role}").as_str())
                .execute(&self.admin)
                .await
                .unwrap();
        }
    }
}

/// `bounce-worker migrate` as a pod's init container runs it; its stderr on success.
fn migrate(database_url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets/db")).unwrap();
    std::fs::write(dir.path().join("secrets/db/url"), database_url).unwrap();
    let config = dir.path().join("bounceconfig.yaml");
    std::fs::write(
        &config,
        "apiVersion: bounceops.io/v1alpha1\nkind: BounceConfig\nmetadata: {name: t}\nspec:\n  database: {urlSecretRef: {name: db, key: url}, schema: listmonk}\n  api: {credentialsSecretRef: {name: api, key: credentials}}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bounce-worker"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .arg("--secrets-dir")
        .arg(dir.path().join("secrets"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "migrate failed: {err}");
    err
}

#[tokio::test]
async fn a_role_of_its_own_with_the_documented_grants_migrates_and_does_all_the_work() {
    let lm = Listmonk::new().await;
    let role = format!("bounceops_{}", Uuid::new_v4().simple());
    sqlx::raw_sql(lm.sql("a role of its own", &role).as_str())
        .execute(&lm.here)
        .await
        .expect("the documented grants run as written");
    let as_role = url(&role, &lm.db);

    let first = migrate(&as_role);
    assert!(first.contains("migrations applied"), "{first}");
    // A restarted pod: its init container changes nothing and needs nothing more.
    let again = migrate(&as_role);
    assert!(again.contains("up to date"), "{again}");

    let worker = TestWorker::start(
        &as_role,
        "  rules: {hard: {count: 1, action: blocklist}, soft: {count: 1, action: unsubscribe}, complaint: {count: 1, action: delete}}\n",
    )
    .await;
    let (ready, _) = worker.get_text("/readyz").await;
    assert_eq!(ready, 200);
    for (email, type_) in [
        ("hard@example.com", "hard"),
        ("soft@example.com", "soft"),
        ("complaint@example.com", "complaint"),
    ] {
        let r = worker
            .post_bounce(&json!({"email": email, "type": type_, "source": "least-privilege"}))
            .await;
        assert_eq!(r.status(), 200, "{type_}: {}", r.text().await.unwrap());
    }
    let status: String =
        sqlx::query_scalar("SELECT status::text FROM subscribers WHERE email = 'hard@example.com'")
            .fetch_one(&lm.here)
            .await
            .unwrap();
    assert_eq!(status, "blocklisted");
    let lists: String = sqlx::query_scalar(
        "SELECT sl.status::text FROM subscriber_lists sl JOIN subscribers s ON s.id = sl.subscriber_id
         WHERE s.email = 'soft@example.com'",
    )
    .fetch_one(&lm.here)
    .await
    .unwrap();
    assert_eq!(lists, "unsubscribed");
    let deleted: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM subscribers WHERE email = 'complaint@example.com'",
    )
    .fetch_one(&lm.here)
    .await
    .unwrap();
    assert_eq!(deleted, 0, "the delete action removed the subscriber");

    let (code, list) = worker.get_json("/api/bounces").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["data"]["total"], 2, "{list}");
    let (code, csv) = worker.get_text("/api/bounces/export?format=csv").await;
    assert_eq!(code, 200, "{csv}");
    assert_eq!(csv.lines().count(), 3, "header and two bounces: {csv}");
    let id = list["data"]["results"][0]["id"].as_i64().unwrap();
    let r = worker
        .client
        .delete(worker.url(&format!("/api/bounces/{id}")))
        .header("Authorization", format!("token {USER}:{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    worker.stop().await.unwrap();

    // The workers' periodic forgetting, once a rotation of the event ids is due: it empties
    // a half with TRUNCATE, which the role may do as the tables' owner.
    sqlx::raw_sql(
        "UPDATE bounceops.processed_events_current SET since = NOW() - interval '8 days'",
    )
    .execute(&lm.here)
    .await
    .unwrap();
    let store = bounce_worker::store::Store::connect_lazy(&as_role, 1).unwrap();
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    let rotated = bounce_worker::store::record::forget_old_event_ids(&store, week, week).await;
    assert!(rotated.expect("the rotation as the role").is_some());

    // Nothing beyond the documented rights was needed, and none was held.
    let creates: bool = sqlx::query_scalar("SELECT has_database_privilege($1, $2, 'CREATE')")
        .bind(&role)
        .bind(&lm.db)
        .fetch_one(&lm.here)
        .await
        .unwrap();
    assert!(!creates);
    lm.drop(&[&role]).await;
}

#[tokio::test]
async fn listmonks_own_role_keeps_migrating_after_the_right_to_create_is_revoked() {
    let lm = Listmonk::new().await;
    let as_owner = url(&lm.owner, &lm.db);
    // The owner of the database may create the schema; the block is for a role that is not.
    sqlx::raw_sql(lm.sql("listmonk's role, the first run", "unused").as_str())
        .execute(&lm.here)
        .await
        .unwrap();
    let first = migrate(&as_owner);
    assert!(first.contains("migrations applied"), "{first}");

    sqlx::raw_sql(lm.sql("listmonk's role, afterwards", "unused").as_str())
        .execute(&lm.here)
        .await
        .unwrap();
    let creates: bool = sqlx::query_scalar("SELECT has_database_privilege($1, $2, 'CREATE')")
        .bind(&lm.owner)
        .bind(&lm.db)
        .fetch_one(&lm.here)
        .await
        .unwrap();
    assert!(!creates, "the documented revoke takes the right away");
    // Every pod's restart runs migrate again: it must not need the right.
    let again = migrate(&as_owner);
    assert!(again.contains("up to date"), "{again}");
    let worker = TestWorker::start(&as_owner, "").await;
    let (ready, _) = worker.get_text("/readyz").await;
    assert_eq!(ready, 200);
    worker.stop().await.unwrap();
    lm.drop(&[]).await;
}
