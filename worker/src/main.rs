//! The `bounce-worker` command line (DESIGN §6).

/// mimalloc rather than glibc's allocator: classifying mail and handling webhooks
/// allocate many small, short-lived strings and JSON values, and mimalloc makes the
/// classifier 11% faster and lowers the webhook path's CPU (BENCHMARKS.md). How it hands
/// memory back is set in `main` (`bounce_worker::allocator`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use bounce_worker::allocator;
use bounce_worker::config::{Reads, Settings};
use bounce_worker::mailbox::{self, MailboxConfig};
use bounce_worker::secrets::SecretsDir;
use bounce_worker::server;
use bounce_worker::store::Store;
use bounce_worker::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "bounce-worker",
    version,
    about = "BounceOps worker: records bounces into a listmonk-compatible database"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "BOUNCEOPS_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the webhooks, the bounce API, the export and the metrics.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Which part of the work this process does.
        #[arg(long, value_enum, default_value = "all")]
        role: Role,
        /// Scan each mailbox once, then exit (mailbox role).
        #[arg(long)]
        once: bool,
    },
    /// Create or update the worker's schema (and, with --standalone, listmonk-shaped tables).
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also create listmonk's tables when they do not exist (no listmonk install).
        #[arg(long)]
        standalone: bool,
    },
    /// Classify message files as the mailbox scanner would, without touching anything.
    Parse {
        /// One JSON object per file (DESIGN §6) instead of text.
        #[arg(long)]
        json: bool,
        /// Raw RFC 5322 message files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct ConfigArgs {
    /// A BounceConfig YAML file (the object you would kubectl apply, or just its spec).
    #[arg(long)]
    config: PathBuf,
    /// Folder where secret references resolve: <secrets-dir>/<name>/<key>.
    #[arg(long)]
    secrets_dir: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    All,
    Webhook,
    Mailbox,
}

impl ConfigArgs {
    fn load(&self, reads: Reads) -> anyhow::Result<Settings> {
        let url = std::env::var("DATABASE_URL").ok();
        Ok(Settings::load_for(
            &self.config,
            &SecretsDir::new(&self.secrets_dir),
            url,
            reads,
        )?)
    }
}

fn main() -> ExitCode {
    // First, while this is the only thread: it sets the allocator's options.
    let tuning = allocator::tune();
    let cli = Cli::parse();
    if let Command::Parse { json, files } = &cli.command {
        return match mailbox::parse::run(files, *json) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    telemetry::init(cli.log_format);
    tracing::debug!(?tuning, "allocator");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bounce-worker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: a JSON line for collectors, else a plain line for the person at hand.
            let text = telemetry::error_chain(e.as_ref());
            match cli.log_format {
                LogFormat::Json => tracing::error!(error = %text, "bounce-worker stopped"),
                LogFormat::Text => eprintln!("bounce-worker: {text}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // Handled in main: it needs neither the runtime nor a configuration.
        Command::Parse { .. } => Ok(()),
        Command::Migrate { config, standalone } => {
            // Migrations need the database only: the init container of every role runs it.
            let settings = config.load(Reads::DatabaseOnly)?;
            let store = Store::connect_lazy(&settings.database_url, 2)?;
            let report = store.migrate(standalone || settings.standalone()).await?;
            if report.created_listmonk_tables {
                tracing::info!("created listmonk-shaped tables (standalone)");
            }
            match report.applied {
                0 => tracing::info!("the worker's schema is up to date; nothing to migrate"),
                n => tracing::info!(applied = n, "migrations applied"),
            }
            store.close().await;
            Ok(())
        }
        Command::Run {
            config,
            listen,
            role,
            once,
        } => {
            // The scanner reads its mailboxes' credentials, never the API's or providers'.
            let settings = config.load(match role {
                Role::Mailbox => Reads::DatabaseOnly,
                Role::All | Role::Webhook => Reads::Everything,
            })?;
            let mailboxes = match role {
                Role::Webhook if once => {
                    anyhow::bail!("--once scans mailboxes: not with --role webhook")
                }
                Role::Webhook => Vec::new(),
                Role::All | Role::Mailbox => MailboxConfig::resolve_all(
                    &settings.spec.mailboxes,
                    &SecretsDir::new(&config.secrets_dir),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", config.config.display()))?,
            };
            if role == Role::Mailbox && mailboxes.is_empty() {
                anyhow::bail!("--role mailbox: the configuration has no spec.mailboxes");
            }
            if once {
                return mailbox::run_once(&settings, mailboxes).await;
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            server::serve_with_mailboxes(&settings, listener, server::termination(), mailboxes)
                .await
        }
    }
}
