//! docs/install.md's "Your first BounceConfig", run as a person runs it: each shell block
//! of the section, read from the Markdown, given to `bash` with the real `kubectl` and
//! `curl`, in a folder where the page's YAML is saved as `newsletter.yaml`. One thing is
//! changed, and checked to be on the page: the database URL, which names the reader's
//! Postgres. Everything else (the namespace, the Secrets' names and token, the port
//! forward to 8080, the `wait` for Ready) is the page's own, so a step that stops working
//! on a real cluster stops this test. The mocked walk of the same page is
//! `operator/tests/install_page.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bounceops_tests::cluster::{self, wait_until};
use bounceops_tests::markdown;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams};
use tokio::process::Command;

use crate::support::{self, Setup};

/// The page's database URL: the one thing the walk replaces.
const PAGE_DATABASE_URL: &str = "postgres://listmonk:PASSWORD@postgres.db.svc:5432/listmonk";
/// The namespace and port the page uses.
const PAGE_NAMESPACE: &str = "mail";
const PAGE_PORT: u16 = 8080;

/// What each block printed, in the page's order.
pub struct Walked {
    pub outputs: Vec<String>,
    pub folder: PathBuf,
}

pub async fn walk(setup: &Setup, admin: &Client) -> Walked {
    let kubectl = cluster::kubectl().expect(
        "the install page's walk runs the page's kubectl commands: no kubectl in \
         KUBEBUILDER_ASSETS, /usr/local/kubebuilder/bin or PATH",
    );
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", PAGE_PORT)).is_ok(),
        "the install page forwards port {PAGE_PORT}, which something on this machine holds"
    );
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    gone(&namespaces).await;

    let (db_url, _pool) = support::database_named("_install_page").await;
    let pod_db_url = support::relayed(&db_url, &setup.host).await;
    let folder =
        std::env::temp_dir().join(format!("bounceops-install-page-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("a folder for the walk");

    let page = bounceops_tests::read("docs/install.md");
    let section = markdown::section(&page, "## Your first BounceConfig")
        .expect("install.md has the section \"Your first BounceConfig\"");
    assert_eq!(
        section.matches(PAGE_DATABASE_URL).count(),
        1,
        "the walk replaces the page's database URL, which it no longer finds once"
    );
    let mut outputs = Vec::new();
    for block in markdown::fenced_blocks(section) {
        match block.lang.as_str() {
            "yaml" => std::fs::write(folder.join("newsletter.yaml"), &block.text)
                .expect("save newsletter.yaml"),
            "sh" => {
                let script = block.text.replace(PAGE_DATABASE_URL, &pod_db_url);
                outputs.push(run(&kubectl, &setup.kubeconfig, &folder, &script).await);
            }
            other => panic!("install.md's first BounceConfig has a block of kind {other:?}"),
        }
    }
    Walked { outputs, folder }
}

/// What a reader sees after each block, checked: the BounceConfig Ready, its children
/// listed, the test bounce answered as listmonk answers it, the bounce API and the export.
pub fn check(walked: &Walked) {
    let all = walked.outputs.join("\n");
    for expected in [
        "namespace/mail created",
        "secret/listmonk-db created",
        "secret/bounce-api created",
        "bounceconfig.bounceops.io/newsletter created",
        "bounceconfig.bounceops.io/newsletter condition met",
        "deployment.apps/newsletter-webhook",
        "service/newsletter-webhook",
        "ingress.networking.k8s.io/newsletter-webhook",
        // No cert-manager in the test cluster: the status says so instead of pretending.
        "TLSSecretMissing",
        r#"{"data":true}"#,
    ] {
        assert!(
            all.contains(expected),
            "no {expected:?} in what the page printed:\n{all}"
        );
    }
    let csv = std::fs::read_to_string(walked.folder.join("bounces.csv"))
        .expect("the page's export wrote bounces.csv");
    assert!(
        csv.lines().next().is_some_and(|h| h.contains("email")),
        "bounces.csv starts with its header: {csv:?}"
    );
}

/// Removes the page's namespace, this run's or a failed run's, so that its
/// `kubectl create namespace` meets none.
pub async fn gone(namespaces: &Api<Namespace>) {
    let _ = namespaces
        .delete(PAGE_NAMESPACE, &DeleteParams::default())
        .await;
    wait_until(
        "the install page's namespace is gone",
        Duration::from_secs(180),
        || async {
            namespaces
                .get_opt(PAGE_NAMESPACE)
                .await
                .ok()
                .flatten()
                .is_none()
        },
    )
    .await;
}

/// One block as a script: stops at the first failing command, and ends what it left in
/// the background (the port-forward) when it ends.
async fn run(kubectl: &Path, kubeconfig: &Path, folder: &Path, script: &str) -> String {
    let bin = kubectl.parent().expect("kubectl's folder");
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("a PATH");
    let wrapped =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&wrapped)
        .current_dir(folder)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "install.md's block failed ({}):\n{script}\n--- it printed:\n{text}",
        out.status
    );
    text
}
