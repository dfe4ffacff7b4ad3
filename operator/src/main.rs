//! `bounce-operator`: flags, logging, leader election, the HTTP endpoints and shutdown
//! around [`bounce_operator::controller::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bounce_operator::controller::{self, Scope};
use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::{Settings, default_worker_image};
use clap::{Parser, Subcommand};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Reconciles BounceConfig resources into BounceOps workers"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Image of the worker pods.
    #[arg(long, global = true, env = "BOUNCEOPS_WORKER_IMAGE", default_value_t = default_worker_image())]
    worker_image: String,
    /// imagePullPolicy of the worker containers (default: the cluster's). `Never` for
    /// images imported into the nodes by hand, where no registry serves them.
    #[arg(long, global = true, env = "BOUNCEOPS_WORKER_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    worker_image_pull_policy: Option<String>,
    /// Address of /healthz and /metrics.
    #[arg(long, env = "BOUNCEOPS_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "BOUNCEOPS_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Take the leader Lease before reconciling, so several replicas are safe.
    #[arg(long, env = "BOUNCEOPS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "bounce-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "BOUNCEOPS_LOG_JSON")]
    log_json: bool,
}

/// Without a command, the operator runs.
#[derive(Subcommand, Debug)]
enum Command {
    /// Print the patch that adds the sending relay (`spec.relay`) to listmonk's Deployment
    /// as a native sidecar; apply it with `kubectl patch deployment listmonk --patch-file`.
    RelaySidecar {
        /// The BounceConfig's YAML file (the one applied to the cluster, or `kubectl get -o
        /// yaml`'s); `-` reads it from standard input.
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::RelaySidecar { config }) = &args.command {
        let text = if config.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
        } else {
            std::fs::read_to_string(config)
                .with_context(|| format!("cannot read {}", config.display()))?
        };
        let settings = Settings {
            worker_image: args.worker_image.clone(),
            worker_image_pull_policy: args.worker_image_pull_policy.clone(),
        };
        let patch = bounce_operator::relay_sidecar::patch_yaml(&text, &settings)
            .map_err(|why| anyhow::anyhow!("{}: {why}", config.display()))?;
        print!("{patch}");
        return Ok(());
    }
    init_tracing(args.log_json);
    let client = Client::try_default()
        .await
        .context("no Kubernetes client configuration (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::new());
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("bounce-operator-{}", std::process::id()));

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let http = tokio::spawn(bounce_operator::http::serve(
        args.listen,
        metrics.clone(),
        stopped(stop_rx.clone()),
    ));

    let settings = Settings {
        worker_image: args.worker_image.clone(),
        worker_image_pull_policy: args.worker_image_pull_policy.clone(),
    };
    let scope = Scope(args.namespace.clone());
    let result = if args.leader_election {
        run_as_leader(
            client,
            &args,
            identity,
            scope,
            settings,
            metrics,
            stop_rx.clone(),
        )
        .await
    } else {
        metrics.leader.set(1);
        controller::run(
            client,
            scope,
            settings,
            identity,
            metrics,
            stopped(stop_rx.clone()),
        )
        .await;
        Ok(())
    };
    let _ = http.await;
    result
}

/// Waits for the Lease, reconciles while holding it, and exits (non-zero) if it is lost:
/// a restarted replica queues for the Lease again with a clean state, which is simpler
/// and safer than pausing a running controller.
async fn run_as_leader(
    client: Client,
    args: &Args,
    identity: String,
    scope: Scope,
    settings: Settings,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        // One field manager per replica: taking a free Lease is a server-side apply without
        // force, and only distinct managers make the second of two simultaneous takers get
        // a conflict. With a shared manager both applies succeed and both replicas lead
        // until the next renewal (seen on a real API server, never on the mocked one).
        .with_field_manager(format!("{}-{identity}", bounce_operator::MANAGER))
        .build()
        .await
        .context("cannot set up the leader Lease")?;
    let (mut leader, lease_task) = manager.watch().await;
    tracing::info!(lease = %args.lease_name, namespace = %args.lease_namespace, %identity, "waiting for the leader Lease");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => changed.context("lease manager stopped")?,
            _ = stop.wait_for(|s| *s) => {
                drop(leader);
                let _ = lease_task.await;
                return Ok(());
            }
        }
    }
    tracing::info!("leading");
    metrics.leader.set(1);

    let (lost_tx, mut lost_rx) = watch::channel(false);
    let mut leader_watch = leader.clone();
    let mut stop_for_controller = stop.clone();
    let shutdown = async move {
        tokio::select! {
            _ = stop_for_controller.wait_for(|s| *s) => {}
            _ = leader_watch.wait_for(|l| !*l) => { let _ = lost_tx.send(true); }
        }
    };
    controller::run(client, scope, settings, identity, metrics.clone(), shutdown).await;
    metrics.leader.set(0);
    let lost = *lost_rx.borrow_and_update();
    // Closing the channel makes the lease task release the Lease for the next replica.
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
        other => tracing::warn!(?other, "could not release the leader Lease cleanly"),
    }
    if lost {
        anyhow::bail!("lost the leader Lease");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    // Colour codes only for a person at a terminal, never in `kubectl logs`; NO_COLOR too.
    use std::io::IsTerminal as _;
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
