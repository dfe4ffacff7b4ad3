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

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

use bounce_worker::allocator;
use bounce_worker::config::{Reads, Settings};
use bounce_worker::mailbox::{self, MailboxConfig};
use bounce_worker::relay;
use bounce_worker::secrets::SecretsDir;
use bounce_worker::server;
use bounce_worker::smtp;
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
        #[arg(long, value_parser = role_parser(), default_value = "all")]
        role: Role,
        /// Scan each mailbox once, then exit (mailbox role).
        #[arg(long)]
        once: bool,
        /// Where the bounce MX listens (smtp role, and all when spec.smtp is set);
        /// default 127.0.0.1:<spec.smtp.port>.
        #[arg(long)]
        smtp_listen: Option<SocketAddr>,
        /// Where the sending relay listens (relay role); default 127.0.0.1:<spec.relay.port>,
        /// the sidecar's. An address other than loopback needs spec.relay.credentialsSecretRef.
        #[arg(long)]
        relay_listen: Option<SocketAddr>,
    },
    /// Make or read signed VERP return paths (spec.smtp), with the server's key files.
    Verp {
        #[command(subcommand)]
        command: VerpCommand,
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

#[derive(Subcommand)]
enum VerpCommand {
    /// Print the VERP address <prefix>+<token>@<domain> of a subscriber (and campaign).
    Encode {
        /// File holding the VERP key (the Secret's value).
        #[arg(long)]
        key_file: PathBuf,
        /// The subscriber's UUID.
        #[arg(long)]
        subscriber: uuid::Uuid,
        /// The campaign's UUID.
        #[arg(long)]
        campaign: Option<uuid::Uuid>,
        /// spec.smtp.verpPrefix.
        #[arg(long, default_value = "b")]
        prefix: String,
        /// One of spec.smtp.domains.
        #[arg(long)]
        domain: String,
    },
    /// Print the subscriber and campaign of a VERP address; fails on a bad signature.
    Decode {
        /// File holding the VERP key.
        #[arg(long)]
        key_file: PathBuf,
        /// File holding the previous key, accepted as well (during a rotation).
        #[arg(long)]
        previous_key_file: Option<PathBuf>,
        address: String,
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

/// `--role`: one of the roles a cluster runs as Deployments (the operator writes them), or
/// `all` of them in one process, as on a laptop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    All,
    One(bounceops_api::Role),
}

/// The roles' names, the one enum's, and `all`.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use bounceops_api::Role as R;
    clap::builder::PossibleValuesParser::new(
        std::iter::once("all").chain(R::ALL.iter().map(|r| r.as_str())),
    )
    .map(|name| match name.as_str() {
        "all" => Role::All,
        one => Role::One(one.parse().expect("a possible value is a role")),
    })
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
    if let Command::Verp { command } = &cli.command {
        return verp(command);
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

fn verp(command: &VerpCommand) -> ExitCode {
    let result = match command {
        VerpCommand::Encode {
            key_file,
            subscriber,
            campaign,
            prefix,
            domain,
        } => smtp::cli::encode(key_file, *subscriber, *campaign, prefix, domain),
        VerpCommand::Decode {
            key_file,
            previous_key_file,
            address,
        } => smtp::cli::decode(key_file, previous_key_file.as_deref(), address).map(|v| {
            let campaign = v.campaign.map_or("-".to_owned(), |c| c.to_string());
            format!("subscriber {}\ncampaign {campaign}", v.subscriber)
        }),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bounce-worker verp: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // Handled in main: they need neither the runtime nor a configuration.
        Command::Parse { .. } | Command::Verp { .. } => Ok(()),
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
            smtp_listen,
            relay_listen,
        } => {
            use bounceops_api::Role as R;
            // The scanner reads its mailboxes' credentials, never the API's or providers';
            // the bounce MX its VERP keys and certificate only.
            let settings = config.load(match role {
                Role::One(R::Mailbox) => Reads::DatabaseOnly,
                Role::One(R::Smtp) => Reads::Smtp,
                Role::One(R::Relay) => Reads::Relay,
                Role::All | Role::One(R::Webhook) => Reads::Everything,
            })?;
            let mailboxes = match role {
                Role::One(R::Webhook | R::Smtp | R::Relay) if once => {
                    anyhow::bail!("--once scans mailboxes: only with --role mailbox or all")
                }
                Role::One(R::Webhook | R::Smtp | R::Relay) => Vec::new(),
                Role::All | Role::One(R::Mailbox) => MailboxConfig::resolve_all(
                    &settings.spec.mailboxes,
                    &SecretsDir::new(&config.secrets_dir),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", config.config.display()))?,
            };
            if role == Role::One(R::Mailbox) && mailboxes.is_empty() {
                anyhow::bail!("--role mailbox: the configuration has no spec.mailboxes");
            }
            if role == Role::One(R::Smtp) && settings.smtp.is_none() {
                anyhow::bail!("--role smtp: the configuration has no spec.smtp");
            }
            if role == Role::One(R::Relay) && settings.relay.is_none() {
                anyhow::bail!("--role relay: the configuration has no spec.relay");
            }
            if relay_listen.is_some() && role != Role::One(R::Relay) {
                // `all` never runs the relay: it is listmonk's sidecar or a Deployment of its own.
                anyhow::bail!("--relay-listen is for --role relay only");
            }
            if once {
                return Ok(mailbox::run_once(&settings, mailboxes).await?);
            }
            let smtp = match (&settings.smtp, role) {
                (Some(_), Role::One(R::Smtp) | Role::All) => {
                    let port = settings.spec.smtp.as_ref().map_or(2525, |s| s.port);
                    let addr =
                        smtp_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
                    Some(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (SMTP): {e}"))?,
                    )
                }
                _ => None,
            };
            let relay = match (&settings.relay, role) {
                (Some(config), Role::One(R::Relay)) => {
                    let port = settings.spec.relay.as_ref().map_or(2525, |r| r.port);
                    let addr =
                        relay_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
                    relay::check_listen(addr, config)?;
                    Some(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (relay): {e}"))?,
                    )
                }
                _ => None,
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            server::serve_with_relay(
                &settings,
                listener,
                server::termination(),
                mailboxes,
                smtp,
                relay,
            )
            .await?;
            Ok(())
        }
    }
}
