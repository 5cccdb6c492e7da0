//! The `clientele` command: run the service and administer merchants and keys.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clientele::auth::{Scope, issue_key};
use clientele::config::{CommonFlags, Config, Loaded, ServeFlags};
use clientele::crypto::{Vault, load_master_key};
use clientele::routes::bulk::{Importer, export_lines};
use clientele::routes::timestamp;
use clientele::store::{Actor, Db, DbOptions, Tenant};
use clientele::{App, shutdown_signal, telemetry};
use serde_json::json;
use uuid::Uuid;

/// mimalloc rather than the system allocator: a request allocates and frees many
/// small buffers (headers, JSON, rows), and glibc's malloc spent about 9 % of a
/// customer read's CPU on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "clientele", version, about = "Self-hostable merchant Customer API")]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve(ServeFlags),
    /// Apply database migrations and exit.
    Migrate,
    /// Merchants.
    Merchant {
        #[command(subcommand)]
        action: MerchantCmd,
    },
    /// API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyCmd,
    },
    /// People who sign in to the portal (`/portal`).
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Import customers from an NDJSON file (one create body per line), upserting
    /// by externalReference; prints the summary, and each failed line on stderr.
    Import {
        /// The NDJSON file.
        file: std::path::PathBuf,
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
    },
    /// Export every customer of a merchant as NDJSON (a consistent snapshot).
    Export {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Copy a live SQLite database to FILE, consistently while servers write
    /// (PostgreSQL: prints the pg_dump recipe); prints {"backup", "bytes", ...}.
    Backup {
        /// The copy to write; must not exist yet.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Put a backup in place of the SQLite database (refused while a server
    /// uses it; the database it replaces is kept beside it, renamed).
    Restore {
        /// The backup to restore.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Webhook endpoints.
    Webhook {
        #[command(subcommand)]
        action: WebhookCmd,
    },
    /// Encryption keys of the vault.
    Keys {
        #[command(subcommand)]
        action: KeysCmd,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum WebhookCmd {
    /// A merchant's endpoints (never their secrets); prints one JSON line each.
    List {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
    },
}

#[derive(Subcommand)]
enum MerchantCmd {
    /// Every merchant; prints one JSON line each.
    List,
    /// Create a merchant and its first API key; prints {"merchantId", "apiKey"}.
    Create {
        /// The merchant's name (1 to 200 characters).
        #[arg(long)]
        name: String,
    },
    /// Point-of-sale settings: the IIN virtual cards are issued under, and whether
    /// the merchant may override customer verification; prints the settings.
    Configure {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
        /// 6 digits (default 990000).
        #[arg(long, value_parser = parse_bin)]
        vcc_bin: Option<String>,
        /// Whether the merchant may confirm a customer without verification.
        #[arg(long)]
        allow_merchant_override: Option<bool>,
    },
}

#[derive(Subcommand)]
enum ApiKeyCmd {
    /// Create a key for a merchant (default scopes: all but payment_methods:reveal).
    Create {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
        /// A scope to grant; repeat for several.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The key's id (`keyId`), never the key.
        key_id: Uuid,
    },
    /// A merchant's keys, the newest first (never the keys); prints one JSON line each.
    List {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user with a generated password (shown once; they change it in
    /// the portal); prints {"userId", "email", "password"}.
    Create {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
        /// The email they sign in with.
        #[arg(long)]
        email: String,
        /// `admin` changes things; `viewer` sees everything an admin sees and changes nothing.
        #[arg(long, value_parser = parse_role)]
        role: clientele::portal::Role,
    },
    /// A merchant's users (never their passwords); prints one JSON line each.
    List {
        /// The merchant's id.
        #[arg(long)]
        merchant: Uuid,
    },
    /// Disable a user and end their sessions.
    Disable {
        /// The user's id (`userId`).
        user_id: Uuid,
    },
}

fn parse_role(s: &str) -> Result<clientele::portal::Role, String> {
    clientele::portal::Role::parse(s).ok_or_else(|| "a role is admin or viewer".into())
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Add a new data key version and re-encrypt every stored secret with it
    /// (safe while servers run); prints {"version", "reencrypted"}.
    Rotate,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print every setting `serve` would use (with these flags) and where each
    /// came from; secrets as ***.
    Show(ServeFlags),
}

fn parse_bin(s: &str) -> Result<String, String> {
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("an IIN is 6 digits".into())
    }
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope; use one of {}", all.join(", "))
    })
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, &DbOptions { max_connections: 2, ..DbOptions::default() }).await?;
    db.migrate().await?;
    Ok(db)
}

/// Creates a key by the operator (no key, no user); returns (key id, secret).
async fn new_key(db: &Db, tenant: Tenant, scopes: &[Scope]) -> anyhow::Result<(Uuid, String)> {
    let key = issue_key(db, Actor::system(tenant), scopes).await?;
    Ok((key.id, key.secret))
}

/// The merchant of this id, or an error naming it.
async fn tenant_of(db: &Db, id: Uuid) -> anyhow::Result<Tenant> {
    db.find_merchant(id).await?.with_context(|| format!("no merchant {id}"))
}

/// Raises the soft limit on open files to the hard one (a service's default is
/// often 1,024), and keeps the connection limit far enough under it for the
/// database and log files: past it, `accept` fails and nobody is served.
fn fit_connections_to_open_files(limits: &mut clientele::config::Limits) {
    const RESERVED: u64 = 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => {
            let room = files.saturating_sub(RESERVED).max(16);
            if u64::from(limits.max_connections) > room {
                tracing::warn!(
                    open_files = files,
                    max_connections = room,
                    "the open-file limit is too low for CLIENTELE_MAX_CONNECTIONS; connections are limited to fit"
                );
                limits.max_connections = u32::try_from(room).unwrap_or(u32::MAX);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read or raise the open-file limit"),
    }
}

async fn run(command: Command, loaded: Loaded) -> anyhow::Result<()> {
    let mut config = loaded.config.clone();
    match command {
        Command::Serve(_) => {
            fit_connections_to_open_files(&mut config.limits);
            let app = App::start(&config).await?;
            let db = app.state.db().clone();
            if db.count_merchants().await? == 0 {
                let tenant = db.create_merchant("Default merchant").await?;
                let (_, secret) = new_key(&db, tenant, &Scope::DEFAULT).await?;
                tracing::warn!(merchant_id = %tenant.id(), "no merchant existed: created one; its API key is printed once on stdout");
                println!("{}", json!({"merchantId": tenant.id(), "apiKey": secret}));
            }
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listening on {}", config.listen))?;
            tracing::info!(listen = %listener.local_addr()?, backend = ?db.backend(), "serving");
            app.serve(listener, shutdown_signal()).await
        }
        Command::Migrate => {
            let db = open(&config).await?;
            db.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Merchant { action: MerchantCmd::Create { name } } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty() && name.chars().count() <= 200, "--name must be 1 to 200 characters");
            let db = open(&config).await?;
            let tenant = db.create_merchant(name).await?;
            let (_, secret) = new_key(&db, tenant, &Scope::DEFAULT).await?;
            println!("{}", json!({"merchantId": tenant.id(), "apiKey": secret}));
            db.close().await;
            Ok(())
        }
        Command::Merchant { action: MerchantCmd::List } => {
            let db = open(&config).await?;
            for m in db.merchants().await? {
                println!("{}", json!({"merchantId": m.id, "name": m.name, "createdOn": timestamp(m.created_at)}));
            }
            db.close().await;
            Ok(())
        }
        Command::ApiKey { action: ApiKeyCmd::List { merchant } } => {
            let db = open(&config).await?;
            let tenant = tenant_of(&db, merchant).await?;
            for k in db.scoped(tenant).api_keys(i64::MAX).await? {
                let scopes: Vec<&str> = k.scopes.split_whitespace().collect();
                println!(
                    "{}",
                    json!({"keyId": k.id, "scopes": scopes, "createdOn": timestamp(k.created_at),
                        "lastUsedOn": k.last_used_at.map(timestamp), "revokedOn": k.revoked_at.map(timestamp)})
                );
            }
            db.close().await;
            Ok(())
        }
        Command::Webhook { action: WebhookCmd::List { merchant } } => {
            let db = open(&config).await?;
            let tenant = tenant_of(&db, merchant).await?;
            for e in db.scoped(tenant).webhook_endpoints().await? {
                println!("{}", serde_json::to_string(&clientele::routes::webhooks::EndpointView::from(e))?);
            }
            db.close().await;
            Ok(())
        }
        Command::Backup { to } => {
            let report = clientele::store::backup::backup(&config.database_url, &to).await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!("{}", clientele::store::backup::KEY_REMINDER);
            Ok(())
        }
        Command::Restore { from } => {
            let report = clientele::store::backup::restore(&config.database_url, &from).await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!("{}", clientele::store::backup::KEY_REMINDER);
            Ok(())
        }
        Command::Merchant { action: MerchantCmd::Configure { merchant, vcc_bin, allow_merchant_override } } => {
            let db = open(&config).await?;
            let tenant = tenant_of(&db, merchant).await?;
            db.configure_merchant(tenant, vcc_bin.as_deref(), allow_merchant_override).await?;
            let (bin, allow) = db.merchant_settings(tenant).await?;
            println!("{}", json!({"merchantId": merchant, "vccBin": bin, "allowMerchantOverride": allow}));
            db.close().await;
            Ok(())
        }
        Command::ApiKey { action: ApiKeyCmd::Create { merchant, scopes } } => {
            let db = open(&config).await?;
            let tenant = tenant_of(&db, merchant).await?;
            let scopes = if scopes.is_empty() { Scope::DEFAULT.to_vec() } else { scopes };
            let (id, secret) = new_key(&db, tenant, &scopes).await?;
            let names: Vec<_> = scopes.iter().map(|s| s.as_str()).collect();
            println!("{}", json!({"keyId": id, "merchantId": merchant, "apiKey": secret, "scopes": names}));
            db.close().await;
            Ok(())
        }
        Command::ApiKey { action: ApiKeyCmd::Revoke { key_id } } => {
            let db = open(&config).await?;
            let revoked = db.revoke_api_key(key_id).await?;
            db.close().await;
            anyhow::ensure!(revoked, "no live API key {key_id}");
            println!("{}", json!({"keyId": key_id, "revoked": true}));
            Ok(())
        }
        Command::User { action: UserCmd::Create { merchant, email, role } } => {
            let mut problems = clientele::domain::Problems::new();
            let Some(parsed) = clientele::domain::contact::Email::parse(&email, "email", &mut problems) else {
                anyhow::bail!("'{email}' is not an email address");
            };
            let email = parsed.normalized().to_owned();
            let db = open(&config).await?;
            let tenant = tenant_of(&db, merchant).await?;
            let vault = Vault::new(load_master_key(config.master_key.as_ref(), &config.data_dir)?);
            let password = clientele::portal::generated_password();
            let hash = vault.hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = Uuid::now_v7();
            db.create_portal_user(tenant, id, &email, role.as_str(), &hash).await?;
            db.close().await;
            println!(
                "{}",
                json!({"userId": id, "merchantId": merchant, "email": email, "role": role.as_str(), "password": password})
            );
            Ok(())
        }
        Command::User { action: UserCmd::List { merchant } } => {
            let db = open(&config).await?;
            for u in db.portal_users(merchant).await? {
                println!(
                    "{}",
                    json!({"userId": u.id, "email": u.email, "role": u.role, "status": u.status, "createdOn": timestamp(u.created_at)})
                );
            }
            db.close().await;
            Ok(())
        }
        Command::User { action: UserCmd::Disable { user_id } } => {
            let db = open(&config).await?;
            let done = db.disable_portal_user(user_id).await?;
            db.close().await;
            anyhow::ensure!(done, "no user {user_id}");
            println!("{}", json!({"userId": user_id, "disabled": true}));
            Ok(())
        }
        Command::Import { file, merchant } => import(&config, &file, merchant).await,
        Command::Export { merchant, output } => export(&config, merchant, output.as_deref()).await,
        Command::Keys { action: KeysCmd::Rotate } => {
            let db = open(&config).await?;
            let vault = Vault::new(load_master_key(config.master_key.as_ref(), &config.data_dir)?);
            let report = db.rotate_keys(&vault).await?;
            db.close().await;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Config { action: ConfigCmd::Show(_) } => {
            println!("{}", serde_json::to_string_pretty(&loaded.show())?);
            Ok(())
        }
    }
}

/// The command-line import commits 4 times the lines of one over HTTP, about a
/// second of the writer each on 2 cores (a service running beside it waits that
/// long for its own writes): the index pages a batch touches are written once per
/// commit, so a million customers went in 15 to 25 % faster (80-86 -> 68-71 s).
const IMPORT_BATCH: usize = 20_000;

/// The command-line import's writer holds ~200 MB of pages (a service's, 16 MB):
/// the email and reference indexes of a million customers take random inserts, and
/// with the small cache each batch read their pages back and spilled them to the
/// WAL before its commit wrote them again. A million customers: 64-76 -> 61-66 s,
/// system time 21-25 -> 13-15 s; the import's peak RSS 185 -> 400 MiB.
const IMPORT_WRITER_CACHE_KIB: u32 = 200_000;

async fn import(config: &Config, path: &std::path::Path, merchant: Uuid) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let options = DbOptions {
        max_connections: config.db_max_connections,
        writer_cache_kib: IMPORT_WRITER_CACHE_KIB,
        ..DbOptions::default()
    };
    let app = App::start_with(config, options).await?;
    let tenant = tenant_of(app.state.db(), merchant).await?;
    let file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
    let bar = indicatif::ProgressBar::new(file.metadata().await?.len());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reading = bar.clone();
    let chunks = futures_util::stream::unfold(file, move |mut f| {
        let bar = reading.clone();
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        }
    });
    let actor = Actor {
        tenant,
        api_key_id: None,
        user_id: None,
        correlation_id: format!("cli-import-{}", Uuid::new_v4()),
        idempotency: None,
    };
    let (out, mut results) = tokio::sync::mpsc::channel(256);
    let importer = Importer::new(app.state.clone(), actor, true, out).await?.lines_per_transaction(IMPORT_BATCH);
    let task = tokio::spawn(importer.run(axum::body::Body::from_stream(chunks)));
    let upkeep = tokio::spawn(clientele::keep_search_index(app.state.db().clone()));
    let mut summary = serde_json::Value::Null;
    while let Some(line) = results.recv().await {
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        if v.get("errors").is_some() || v.get("error").is_some() {
            bar.suspend(|| eprintln!("{v}"));
        } else if let Some(s) = v.get("summary") {
            summary = s.clone();
        }
    }
    task.await?;
    upkeep.abort();
    bar.finish_and_clear();
    println!("{summary}");
    app.state.db().close().await;
    // The summary is the answer either way; the exit status says whether every line went in.
    let failed = summary.get("failed").and_then(serde_json::Value::as_u64).unwrap_or(0);
    anyhow::ensure!(failed == 0, "{failed} line(s) failed (each printed above on stderr)");
    Ok(())
}

async fn export(config: &Config, merchant: Uuid, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::io::Write;
    let db = open(config).await?;
    let tenant = tenant_of(&db, merchant).await?;
    let search =
        clientele::routes::customers::parse_search(Some("pageSize=1"), &[]).map_err(|_| anyhow::anyhow!("search"))?;
    let total = db.scoped(tenant).search_customers(&search).await?.total;
    let bar = indicatif::ProgressBar::new(total as u64);
    let mut sink: Box<dyn Write + Send> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (tx, mut batches) = tokio::sync::mpsc::channel(4);
    let reader = db.clone();
    let task = tokio::spawn(async move { reader.export_customers(tenant, &tx).await });
    // A reader that stops early (`clientele export | head`) ends the export quietly.
    let closed = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    while let Some(batch) = batches.recv().await {
        let n = batch.0.len() as u64;
        match sink.write_all(&export_lines(batch)) {
            Err(e) if closed(&e) => break,
            written => written?,
        }
        bar.inc(n);
    }
    drop(batches);
    let exported = task.await?;
    match sink.flush() {
        Err(e) if closed(&e) => {}
        flushed => flushed?,
    }
    bar.finish_and_clear();
    db.close().await;
    exported?;
    Ok(())
}

fn main() -> ExitCode {
    clientele::store::configure_sqlite();
    let cli = Cli::parse();
    let serve = match &cli.command {
        Command::Serve(flags) | Command::Config { action: ConfigCmd::Show(flags) } => Some(flags),
        _ => None,
    };
    let loaded = match Config::load(&cli.common, serve) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let logs = telemetry::init_logs(loaded.config.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, loaded));
    // Every log line is out before the error, which is the last word.
    drop(runtime);
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
