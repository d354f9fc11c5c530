//! The `qotd` command line: `serve` (what host.json starts), `local` (the README's run
//! command: handler + local Functions host), `token`, `migrate` and `generate`.
//! Errors are printed as one line naming the bad value, with a non-zero exit code.

use crate::app::App;
use crate::app::Settings;
use crate::kernel::QuizDay;
use crate::platform::auth::dev_issuer::{self, DevIssuer};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config;
use crate::platform::functions::local_host::LocalHost;
use crate::platform::http::server;
use crate::platform::store::{self, DatabaseUrl};
use crate::platform::telemetry;
use crate::quiz::Generation;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "qotd",
    version,
    about = "Quiz of the Day: an Azure Functions custom handler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run as the Functions custom handler on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (started by the host via host.json).
    Serve,
    /// Write a runnable Function App folder (host.json, one folder per function, this binary, local.settings.json from local.settings.json.example) for `func start` or `func azure functionapp publish`.
    Stage {
        /// The folder to write; it must not exist or be empty.
        dir: PathBuf,
        /// Replace the folder's contents if it is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Run locally on embedded defaults: the handler plus a local Functions host (HTTP, timers, events).
    Local {
        /// Address the local host listens on.
        #[arg(long, default_value = "127.0.0.1:7071")]
        addr: SocketAddr,
        /// Folder for the SQLite database and the dev issuer's key.
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Print a bearer token signed by the local dev issuer.
    Token {
        /// The user id (token subject).
        #[arg(long)]
        user: String,
        /// Display name claim.
        #[arg(long)]
        name: Option<String>,
        /// Role to grant (repeatable), e.g. --role admin, or --role quiz.service with
        /// --no-scope for an app-only (service) token.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Scope to put in `scp` (repeatable; default: quiz.play).
        #[arg(long = "scope", conflicts_with = "no_scope")]
        scopes: Vec<String>,
        /// Mint a token without `scp` (app-only, as a client-credentials token looks).
        #[arg(long)]
        no_scope: bool,
        /// Lifetime in minutes (1 to 10080).
        #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u64).range(1..=10080))]
        ttl_minutes: u64,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Apply pending database migrations and print the schema version before and after; or roll
    /// back the latest one (--down, SQL Server), or list applied and pending ones (--status).
    Migrate {
        /// sqlite://<path>, or an ADO.NET connection string for Azure SQL / SQL Server, e.g.
        /// "Server=tcp:<name>.database.windows.net,1433;Database=<db>;Authentication=Active Directory Default"
        /// (default: QOTD_DATABASE_URL, else sqlite://<data-dir>/qotd.db).
        #[arg(long, env = "QOTD_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Roll back the latest applied migration (one step; SQL Server only).
        #[arg(long, conflicts_with = "status")]
        down: bool,
        /// List every migration as applied (with its time) or pending, as goose prints it.
        #[arg(long)]
        status: bool,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Generate the quiz for a day if it does not exist (idempotent).
    Generate {
        /// The day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Inspect the outbox (events committed but not yet published).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// List, replay or drop poison messages (events a consumer refused). Uses QOTD_DATABASE_URL
    /// (else sqlite://<data-dir>/qotd.db), SQLite and SQL Server alike.
    Poison {
        #[command(subcommand)]
        command: PoisonCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Pending events, the age of the oldest, per topic, and the poison count.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PoisonCommand {
    /// List poison messages, oldest first.
    List {
        /// Only this consumer (consumer name or function name, e.g. LeaderboardOnAttemptEvaluated).
        #[arg(long)]
        consumer: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Print JSON (with payloads) instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Re-run poison messages through their consumer (idempotent); replayed ones are removed.
    Replay {
        /// The poison message id (from `qotd poison list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Replay every poison message (of --consumer).
        #[arg(long)]
        all: bool,
        /// With --all: only this consumer.
        #[arg(long, requires = "all")]
        consumer: Option<String>,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
    /// Delete one poison message without replaying it.
    Drop {
        id: i64,
        #[arg(long, default_value = ".qotd")]
        data_dir: PathBuf,
    },
}

/// Parses arguments, runs the command, and maps failures to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Blocking threads run SQLite calls: one writer and four readers can use only a few, so a
    // small cap keeps memory and context switches down under load.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve().await,
        Command::Stage { dir, force } => stage(&dir, force),
        Command::Local { addr, data_dir } => local(addr, data_dir).await,
        Command::Token {
            user,
            name,
            roles,
            scopes,
            no_scope,
            ttl_minutes,
            data_dir,
        } => {
            crate::kernel::UserId::parse(&user)
                .map_err(|e| anyhow::anyhow!("--user '{user}': {e}"))?;
            for (flag, v) in roles
                .iter()
                .map(|r| ("--role", r))
                .chain(scopes.iter().map(|s| ("--scope", s)))
            {
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
                    anyhow::bail!("{flag} '{v}': expected one name without spaces");
                }
            }
            let scopes = match (no_scope, scopes.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => vec![dev_issuer::DEFAULT_SCOPE.to_owned()],
                (false, false) => scopes,
            };
            let issuer = DevIssuer::load_or_create(&data_dir)?;
            println!(
                "{}",
                issuer.mint_scoped(
                    &user,
                    name.as_deref(),
                    &roles,
                    &scopes,
                    Duration::from_secs(ttl_minutes * 60)
                )?
            );
            Ok(())
        }
        Command::Migrate {
            database,
            down,
            status,
            data_dir,
        } => {
            let url = match database.filter(|d| !d.trim().is_empty()) {
                Some(raw) => {
                    DatabaseUrl::parse(&raw).map_err(|e| anyhow::anyhow!("--database: {e}"))?
                }
                None => DatabaseUrl::Sqlite(data_dir.join("qotd.db")),
            };
            migrate(&url, down, status).await
        }
        Command::Outbox { command } => outbox_command(command).await,
        Command::Poison { command } => poison_command(command).await,
        Command::Generate { date, data_dir } => {
            let day = match date {
                Some(raw) => QuizDay::parse(&raw).map_err(|e| anyhow::anyhow!("--date: {e}"))?,
                None => QuizDay::of(SystemClock.now()),
            };
            let settings = local_settings(&data_dir)?;
            telemetry::init(settings.log_json);
            let app = App::build_connected(settings).await?;
            match app.ready().await.quiz.ensure_generated(day, None).await? {
                Generation::Created(q) => println!(
                    "generated the quiz for {day} ({} questions from {})",
                    q.questions.len(),
                    q.source.as_str()
                ),
                Generation::Existed(_) => {
                    println!("the quiz for {day} already exists; nothing changed")
                }
            }
            Ok(())
        }
    }
}

/// Builds the app for an operations command: the environment's database (or the data dir's
/// SQLite file), logs on stderr at warn unless QOTD_LOG says otherwise.
async fn ops_app(data_dir: &std::path::Path) -> anyhow::Result<Arc<App>> {
    let settings = local_settings(data_dir)?;
    telemetry::init(settings.log_json);
    // A one-shot command needs the database now (SQL Server connects in the background for
    // `serve` only).
    App::build_connected(settings).await
}

async fn outbox_command(command: OutboxCommand) -> anyhow::Result<()> {
    let OutboxCommand::Status { json, data_dir } = command;
    let app = ops_app(&data_dir).await?;
    let r = app.outbox_report().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let age = |a: Option<u64>| a.map_or("-".to_owned(), |s| format!("{s}s"));
    println!("pending: {}", r.pending);
    println!("oldest:  {}", age(r.oldest_age_seconds));
    println!("poison:  {}", r.poison);
    for t in &r.topics {
        println!(
            "  {:<32} pending {:>6}  oldest {}",
            t.topic,
            t.pending,
            age(t.oldest_age_seconds)
        );
    }
    Ok(())
}

async fn poison_command(command: PoisonCommand) -> anyhow::Result<()> {
    match command {
        PoisonCommand::List {
            consumer,
            limit,
            json,
            data_dir,
        } => {
            let app = ops_app(&data_dir).await?;
            let list = app.poison_list(consumer.as_deref(), limit as usize).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("no poison messages");
            }
            for m in &list {
                println!(
                    "{:>6}  {}  {}  {}  {}",
                    m.id,
                    m.received_at,
                    m.consumer,
                    m.message_id.as_deref().unwrap_or("-"),
                    m.reason.chars().take(200).collect::<String>()
                );
            }
            Ok(())
        }
        PoisonCommand::Replay {
            id,
            all,
            consumer,
            data_dir,
        } => {
            let app = ops_app(&data_dir).await?;
            let results = if all {
                let s = app.poison_replay_all(consumer.as_deref()).await?;
                println!(
                    "replayed {}, still poison {}, failed {}",
                    s.replayed, s.still_poison, s.failed
                );
                s.results
            } else {
                let id = id.ok_or_else(|| anyhow::anyhow!("give a poison message id or --all"))?;
                vec![app.poison_replay(id).await?]
            };
            for r in &results {
                println!("{:>6}  {}  {}", r.id, r.outcome, r.detail);
            }
            if results.iter().any(|r| r.outcome == "failed") {
                anyhow::bail!("some replays failed; they stay in the poison table");
            }
            Ok(())
        }
        PoisonCommand::Drop { id, data_dir } => {
            let app = ops_app(&data_dir).await?;
            app.poison_drop(id).await?;
            println!("dropped poison message {id}");
            Ok(())
        }
    }
}

/// `qotd migrate`: up (default), `--down` or `--status`, for either backend.
async fn migrate(url: &DatabaseUrl, down: bool, status: bool) -> anyhow::Result<()> {
    use store::mssql::migrate as mssql_migrate;
    match url {
        DatabaseUrl::Sqlite(path) => {
            if down {
                anyhow::bail!(
                    "--down is available for SQL Server only: the SQLite migrations have no down steps (delete {} to start over)",
                    path.display()
                );
            }
            if status {
                let current = if path.exists() {
                    let conn = rusqlite::Connection::open(path).map_err(|e| {
                        anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display())
                    })?;
                    store::sqlite::current_version(&conn)?
                } else {
                    0
                };
                let lines: Vec<mssql_migrate::StatusLine> = store::sqlite::MIGRATIONS
                    .iter()
                    .map(|(version, name, _)| mssql_migrate::StatusLine {
                        file: format!("{version:05}_{name}.sql"),
                        applied: *version <= current,
                        applied_at: None,
                    })
                    .collect();
                print!("{}", mssql_migrate::format_status(&lines));
                return Ok(());
            }
            let (before, after) = store::sqlite::migrate_file(path)?;
            println!("schema version before: {before}\nschema version after:  {after}");
            Ok(())
        }
        DatabaseUrl::Mssql(cs) => {
            let settings = store::mssql::SqlSettings::from_lookup(|k| std::env::var(k).ok())?;
            let db = store::mssql::Mssql::connect_lazily(cs, &settings)?;
            if status {
                print!(
                    "{}",
                    mssql_migrate::format_status(&mssql_migrate::status(&db).await?)
                );
            } else if down {
                match mssql_migrate::down(&db).await? {
                    Some(m) => {
                        println!("OK   {} ({:.2?})", m.file, m.elapsed);
                        println!("rolled back version {}", m.version);
                    }
                    None => println!("no migration to roll back: none is applied"),
                }
            } else {
                let outcome = mssql_migrate::up(&db).await?;
                for m in &outcome.applied {
                    println!("OK   {} ({:.2?})", m.file, m.elapsed);
                }
                println!(
                    "schema version before: {}\nschema version after:  {}",
                    outcome.before, outcome.after
                );
            }
            Ok(())
        }
    }
}

/// Settings for the local commands: the environment, with the dev issuer on and the data dir
/// from the command line.
fn local_settings(data_dir: &std::path::Path) -> anyhow::Result<Settings> {
    let data_dir = data_dir.to_string_lossy().into_owned();
    Ok(Settings::from_lookup(|k| match k {
        "QOTD_DATA_DIR" => Some(data_dir.clone()),
        "QOTD_DEV_ISSUER" => Some(std::env::var(k).unwrap_or_else(|_| "true".into())),
        _ => std::env::var(k).ok(),
    })?)
}

async fn serve() -> anyhow::Result<()> {
    let port = config::handler_port(|k| std::env::var(k).ok())?;
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_json);
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on 127.0.0.1:{port} (FUNCTIONS_CUSTOMHANDLER_PORT): {e}")
        })?;
    let app = App::build(settings).await?;
    app.set_self_url(format!("http://127.0.0.1:{port}"));
    tracing::info!(port, "qotd handler listening");
    run_handler(app, listener, shutdown_signal()).await;
    Ok(())
}

/// Starts the handler's background work (dispatcher, start-up catch-up) and serves until the
/// shutdown channel fires.
async fn run_handler(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if app.settings.dispatch_in_process {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let services = app.ready().await;
            services
                .dispatcher
                .clone()
                .run(Duration::from_secs(5), shutdown)
                .await
        });
    }
    if app.settings.catch_up_on_start {
        let app = app.clone();
        tokio::spawn(async move { app.catch_up().await });
    }
    tokio::spawn(
        app.clone()
            .run_metrics(app.settings.metrics_interval, shutdown.clone()),
    );
    app.warm_up_http();
    let mut stop = shutdown.clone();
    let limits = app.settings.http.clone();
    server::serve_with(
        listener,
        app,
        async move {
            let _ = stop.changed().await;
        },
        limits,
    )
    .await;
}

/// `qotd stage <dir>`: the folder the Functions host runs (see `platform::functions::stage`).
fn stage(dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use crate::embedded::{FUNCTION_JSON, HOST_JSON, LOCAL_SETTINGS_EXAMPLE};
    let executable = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own file: {e}"))?;
    let written = crate::platform::functions::stage::Stage {
        host_json: HOST_JSON,
        functions: FUNCTION_JSON,
        executable: &executable,
        local_settings: LOCAL_SETTINGS_EXAMPLE,
    }
    .write(dir, force)?;
    println!(
        "staged {} files in {} ({} functions, host.json, {}, local.settings.json)",
        written.len(),
        dir.display(),
        FUNCTION_JSON.len(),
        executable.display()
    );
    println!(
        "run it:      cd {} && azurite --silent --location .azurite & func start",
        dir.display()
    );
    println!(
        "publish it:  cd {} && func azure functionapp publish <app>",
        dir.display()
    );
    Ok(())
}

async fn local(addr: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    let settings = local_settings(&data_dir)?;
    telemetry::init(settings.log_json);
    let host_listener = server::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on --addr {addr}: {e}"))?;
    let host_addr = host_listener.local_addr()?;
    let handler_listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let handler_url = format!("http://{}", handler_listener.local_addr()?);
    let app = App::build(settings).await?;
    app.set_self_url(handler_url.clone());
    let shutdown = shutdown_signal();
    // `%NAME%` references (the DispatchOutbox schedule) resolve from the environment, else
    // from the local defaults, as the host resolves them from app settings.
    let functions = app.functions.resolve_app_settings(|k| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| crate::app::settings::local_default(k).map(str::to_owned))
    })?;
    let host = Arc::new(LocalHost::new(
        functions,
        handler_url.clone(),
        app.clock.clone(),
    )?);
    if app.settings.local_timers {
        host.start_timers(shutdown.clone())?;
    }
    let db = app.settings.database.redacted();
    println!(
        "qotd local host listening on http://{host_addr} (handler on {handler_url}, database {db})"
    );
    println!(
        "get a token:  qotd token --user alice --data-dir {}",
        data_dir.display()
    );
    println!(
        "then:         curl -H \"Authorization: Bearer $TOKEN\" http://{host_addr}/api/quizzes/today"
    );
    let limits = app.settings.http.clone();
    let handler = tokio::spawn(run_handler(app, handler_listener, shutdown.clone()));
    let mut stop = shutdown.clone();
    server::serve_with(
        host_listener,
        host,
        async move {
            let _ = stop.changed().await;
        },
        limits,
    )
    .await;
    let _ = handler.await;
    Ok(())
}

/// Fires on Ctrl-C or SIGTERM (the host stops the handler with SIGTERM on Linux).
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    static SIGNAL: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> =
        std::sync::OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                #[cfg(unix)]
                {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                #[cfg(not(unix))]
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down");
                let _ = tx.send(true);
            });
            rx
        })
        .clone()
}
