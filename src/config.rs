//! Configuration, layered: defaults < a TOML file (`--config` or
//! `CLIENTELE_CONFIG`) < `CLIENTELE_*` environment variables < flags, by
//! figment, which remembers where each value came from: a bad value's error
//! names its variable, file or flag, and `config show` prints each value with
//! its source. Secrets print as `***`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::crypto::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting. Its keys are the environment variables' names without
/// `CLIENTELE_`, in lower case: `listen`, `database_url`, `request_timeout_ms`...
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub master_key: Option<SecretString>,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    pub sms_webhook_url: Option<String>,
    pub outbox_poll_ms: u64,
    pub outbox_retry_ms: u64,
    pub webhooks_allow_private_networks: bool,
    pub webhooks_timeout_ms: u64,
    pub webhooks_poll_ms: u64,
    pub webhooks_retry_ms: u64,
    pub webhooks_retry_for_s: u64,
    pub webhooks_disable_after_s: u64,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<SecretString>,
    #[serde(flatten)]
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./data/clientele.db".into(),
            data_dir: "./data".into(),
            master_key: None,
            log_format: LogFormat::Text,
            db_max_connections: 16,
            smtp_url: None,
            smtp_from: "Clientele <no-reply@localhost>".into(),
            sms_webhook_url: None,
            outbox_poll_ms: 1000,
            outbox_retry_ms: 2000,
            webhooks_allow_private_networks: false,
            webhooks_timeout_ms: 5000,
            webhooks_poll_ms: 1000,
            webhooks_retry_ms: 5000,
            webhooks_retry_for_s: 259_200,
            webhooks_disable_after_s: 432_000,
            metrics_listen: None,
            metrics_token: None,
            limits: Limits::DEFAULT,
        }
    }
}

/// What one client can make the service spend: time, connections, rates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub request_timeout_ms: u64,
    pub query_timeout_ms: u64,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub io_timeout_ms: u64,
    pub max_connections: u32,
    pub max_exports: u32,
    pub export_timeout_s: u64,
    pub rate_limit_per_key: u32,
    pub rate_limit_per_address: u32,
    pub auth_failures_per_minute: u32,
    pub verification_sends_per_minute: u32,
    pub shutdown_drain_ms: u64,
}

/// The settings every command reads: where the data is, and how to log.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct CommonFlags {
    /// A TOML file of settings, keyed as `config show` prints them
    /// (`listen = "0.0.0.0:8080"`); the environment and flags override it.
    #[arg(long = "config", env = "CLIENTELE_CONFIG", global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// `sqlite://PATH` (created with its folder when missing) or `postgres://...`
    /// [default: sqlite://./data/clientele.db; CLIENTELE_DATABASE_URL].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Where the generated master key is kept when none is configured [default:
    /// ./data; CLIENTELE_DATA_DIR].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Base64 of 32 random bytes; encrypts payment data at rest. Prefer the
    /// variable CLIENTELE_MASTER_KEY: a flag shows in the process list.
    #[arg(long, global = true, hide = true)]
    #[serde(skip)]
    pub master_key: Option<SecretString>,
    /// Log lines as text or JSON [default: text; CLIENTELE_LOG_FORMAT].
    #[arg(long, value_enum, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// The server's settings as flags (`serve`, `config show`). Each also comes from
/// `CLIENTELE_<NAME>` or the configuration file; a flag wins.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeFlags {
    /// Address to listen on [default: 127.0.0.1:8080; CLIENTELE_LISTEN].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Database connections per pool [default: 16; CLIENTELE_DB_MAX_CONNECTIONS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_max_connections: Option<u32>,
    /// Email channel of the notification outbox: `smtp://host:port`,
    /// `smtp://…?tls=required` or `smtps://user:pass@host` [CLIENTELE_SMTP_URL].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The sender of notification emails [default: Clientele
    /// <no-reply@localhost>; CLIENTELE_SMTP_FROM].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    /// SMS channel: receives `POST {"to", "message"}`; any 2xx counts as
    /// delivered [CLIENTELE_SMS_WEBHOOK_URL].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms_webhook_url: Option<String>,
    /// How often the outbox is polled (ms) [default: 1000; CLIENTELE_OUTBOX_POLL_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_poll_ms: Option<u64>,
    /// The first retry of a failed notification waits this long (ms); each next
    /// one twice as long [default: 2000; CLIENTELE_OUTBOX_RETRY_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_retry_ms: Option<u64>,
    /// Let webhook deliveries connect to loopback, private and link-local
    /// addresses [default: false; CLIENTELE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_allow_private_networks: Option<bool>,
    /// One webhook attempt's time limit, connection included (ms) [default:
    /// 5000; CLIENTELE_WEBHOOKS_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_timeout_ms: Option<u64>,
    /// How often each node reads the feed and the delivery queue for work other
    /// nodes made (ms) [default: 1000; CLIENTELE_WEBHOOKS_POLL_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_poll_ms: Option<u64>,
    /// The first retry of a failed webhook waits about this long (ms); each next
    /// one twice as long, ±20 % [default: 5000; CLIENTELE_WEBHOOKS_RETRY_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_retry_ms: Option<u64>,
    /// How long a webhook delivery is retried before it fails (s) [default:
    /// 259200, 3 days; CLIENTELE_WEBHOOKS_RETRY_FOR_S].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_retry_for_s: Option<u64>,
    /// An endpoint failing continuously this long is disabled (s) [default:
    /// 432000, 5 days; CLIENTELE_WEBHOOKS_DISABLE_AFTER_S].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_disable_after_s: Option<u64>,
    /// Serve `/metrics` on this address instead of the API's
    /// [CLIENTELE_METRICS_LISTEN].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// `/metrics` answers only `Authorization: Bearer <this>`; prefer the
    /// variable CLIENTELE_METRICS_TOKEN.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub metrics_token: Option<SecretString>,
    /// Longest a request may take to be answered (ms; 100 to 50,000) [default:
    /// 30000; CLIENTELE_REQUEST_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Longest one database read may run (ms; 10 to 600,000) [default: 3000;
    /// CLIENTELE_QUERY_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_timeout_ms: Option<u64>,
    /// A client must send a request's headers within this (ms) [default: 10000;
    /// CLIENTELE_HEADER_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<u64>,
    /// A connection with nothing to do for this long is closed (ms) [default:
    /// 60000; CLIENTELE_IDLE_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// An upload that sends nothing, or a reply not read, for this long ends
    /// (ms) [default: 30000; CLIENTELE_IO_TIMEOUT_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_timeout_ms: Option<u64>,
    /// Connections open at once [default: 4096; CLIENTELE_MAX_CONNECTIONS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Exports streaming at once, one per merchant [default: 2; CLIENTELE_MAX_EXPORTS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_exports: Option<u32>,
    /// Longest an export may stream (s) [default: 1800; CLIENTELE_EXPORT_TIMEOUT_S].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_timeout_s: Option<u64>,
    /// Requests per second one API key may make, in bursts of twice as many (0:
    /// no limit) [default: 1000; CLIENTELE_RATE_LIMIT_PER_KEY].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_key: Option<u32>,
    /// Requests per second one client address may make (0: no limit) [default:
    /// 2000; CLIENTELE_RATE_LIMIT_PER_ADDRESS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_address: Option<u32>,
    /// Failed authentications per minute one address may make (0: no limit)
    /// [default: 60; CLIENTELE_AUTH_FAILURES_PER_MINUTE].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failures_per_minute: Option<u32>,
    /// Verification codes one merchant may send per minute [default: 60;
    /// CLIENTELE_VERIFICATION_SENDS_PER_MINUTE].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_sends_per_minute: Option<u32>,
    /// On SIGTERM, how long the service keeps accepting connections while
    /// `/readyz` answers 503, so load balancers stop sending before it stops
    /// listening (ms; at most 60,000) [default: 1000; CLIENTELE_SHUTDOWN_DRAIN_MS].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_drain_ms: Option<u64>,
}

/// The configuration with where each value came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    figment: Figment,
    file: Option<PathBuf>,
    /// Secrets given as flags (applied after the layers: a secret is never
    /// serialized, so it cannot ride in one).
    secret_flags: Vec<&'static str>,
    /// What to log once logging starts (unknown variables).
    pub warnings: Vec<String>,
}

/// A provider of serialized values under a name of its own (`default`, `flags`),
/// so that `config show` can tell them apart.
struct Named<T>(&'static str, T);

impl<T: Serialize> figment::Provider for Named<T> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.0)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::defaults(&self.1).data()
    }
}

impl Config {
    /// Layers defaults, the file (`common.config_file`), the environment and the
    /// flags; a bad or unknown value is an error naming its source.
    pub fn load(common: &CommonFlags, serve: Option<&ServeFlags>) -> anyhow::Result<Loaded> {
        let serve = serve.cloned().unwrap_or_default();
        let mut figment = Figment::from(Named("default", Config::default()));
        if let Some(file) = &common.config_file {
            anyhow::ensure!(file.is_file(), "the configuration file {} does not exist", file.display());
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("CLIENTELE_").ignore(&["config"]))
            .merge(Named("flags", common))
            .merge(Named("flags", &serve));
        let mut loaded = Loaded {
            config: Config::default(),
            figment,
            file: common.config_file.clone(),
            secret_flags: Vec::new(),
            warnings: Vec::new(),
        };
        let known = serde_json::to_value(Config::default())?;
        let keys: Vec<String> = loaded.figment.extract::<figment::value::Dict>()?.into_keys().collect();
        for key in keys.into_iter().filter(|k| known.get(k).is_none()) {
            let source = loaded.source_of(&key);
            // Other programs may set variables of this prefix; a file's key is a typo.
            anyhow::ensure!(source.starts_with("CLIENTELE_"), "unknown setting {source}");
            loaded.warnings.push(format!("{source} is not a setting of Clientele; it is ignored"));
        }
        let extracted: Result<Config, figment::Error> = loaded.figment.extract();
        loaded.config = extracted.map_err(|errors| {
            let why: Vec<String> = errors
                .into_iter()
                .map(|e| match e.path.join(".") {
                    key if key.is_empty() => e.kind.to_string(),
                    key => format!("{}: {}", loaded.source_of(&key), e.kind),
                })
                .collect();
            anyhow::anyhow!("{}", why.join("; "))
        })?;
        if let Some(key) = &common.master_key {
            loaded.config.master_key = Some(key.clone());
            loaded.secret_flags.push("master_key");
        }
        if let Some(token) = &serve.metrics_token {
            loaded.config.metrics_token = Some(token.clone());
            loaded.secret_flags.push("metrics_token");
        }
        loaded.check()?;
        Ok(loaded)
    }
}

impl Loaded {
    /// Where `key` came from: `CLIENTELE_X`, `--x`, `'x' in FILE` or `default`.
    fn source_of(&self, key: &str) -> String {
        if self.secret_flags.contains(&key) {
            return format!("--{}", key.replace('_', "-"));
        }
        let Some(meta) = self.figment.find_metadata(key) else { return "default".into() };
        match meta.name.as_ref() {
            "default" => "default".into(),
            "flags" => format!("--{}", key.replace('_', "-")),
            name if name.contains("environment") => format!("CLIENTELE_{}", key.to_ascii_uppercase()),
            _ => match &self.file {
                Some(file) => format!("'{key}' in {}", file.display()),
                None => format!("'{key}' in the configuration file"),
            },
        }
    }

    /// Values every parser accepts but the service cannot use: each error names
    /// where the value came from.
    fn check(&self) -> anyhow::Result<()> {
        let l = &self.config.limits;
        let ranges: [(&str, u64, u64, u64); 8] = [
            ("shutdown_drain_ms", l.shutdown_drain_ms, 0, 60_000),
            ("request_timeout_ms", l.request_timeout_ms, 100, MAX_REQUEST_TIMEOUT_MS as u64),
            ("query_timeout_ms", l.query_timeout_ms, 10, 600_000),
            ("header_timeout_ms", l.header_timeout_ms, 100, 600_000),
            ("idle_timeout_ms", l.idle_timeout_ms, 100, 3_600_000),
            ("io_timeout_ms", l.io_timeout_ms, 100, 600_000),
            ("max_connections", u64::from(l.max_connections), 1, u64::from(u32::MAX)),
            ("max_exports", u64::from(l.max_exports), 1, 64),
        ];
        for (key, value, min, max) in ranges {
            anyhow::ensure!(
                (min..=max).contains(&value),
                "{} is {value}: it must be from {min} to {max}",
                self.source_of(key)
            );
        }
        for (key, value) in [
            ("export_timeout_s", l.export_timeout_s),
            ("verification_sends_per_minute", u64::from(l.verification_sends_per_minute)),
        ] {
            anyhow::ensure!(value >= 1, "{} is 0: it must be 1 or more", self.source_of(key));
        }
        Ok(())
    }

    /// `config show`: each setting's value (secrets `***`, URLs without
    /// credentials) and where it came from, and where the master key is read.
    pub fn show(&self) -> serde_json::Value {
        let c = &self.config;
        let mut values = serde_json::to_value(c).unwrap_or_default();
        let masked: [(&str, Option<&String>); 3] = [
            ("database_url", Some(&c.database_url)),
            ("smtp_url", c.smtp_url.as_ref()),
            ("sms_webhook_url", c.sms_webhook_url.as_ref()),
        ];
        for (key, url) in masked {
            if let (Some(v), Some(url)) = (values.get_mut(key), url) {
                *v = serde_json::Value::String(mask_url_password(url));
            }
        }
        let mut settings = serde_json::Map::new();
        if let serde_json::Value::Object(all) = values {
            for (key, value) in all {
                let from = self.source_of(&key);
                settings.insert(key, serde_json::json!({"value": value, "from": from}));
            }
        }
        let master_key = match &c.master_key {
            Some(_) => self.source_of("master_key"),
            None => format!("the file {}", c.data_dir.join("master.key").display()),
        };
        serde_json::json!({"settings": settings, "masterKey": master_key})
    }
}

/// A request's deadline stays under this, so that an `Idempotency-Key` claim
/// (`store::idempotency::ABANDONED_MS`) outlives every request.
pub const MAX_REQUEST_TIMEOUT_MS: i64 = 50_000;
const _: () = assert!(MAX_REQUEST_TIMEOUT_MS < crate::store::idempotency::ABANDONED_MS);

impl Limits {
    pub const DEFAULT: Limits = Limits {
        request_timeout_ms: 30_000,
        query_timeout_ms: 3_000,
        header_timeout_ms: 10_000,
        idle_timeout_ms: 60_000,
        io_timeout_ms: 30_000,
        max_connections: 4096,
        max_exports: 2,
        export_timeout_s: 1800,
        rate_limit_per_key: 1000,
        rate_limit_per_address: 2000,
        auth_failures_per_minute: 60,
        verification_sends_per_minute: 60,
        shutdown_drain_ms: 1000,
    };

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A URL as configuration shows it: no password, no query string, no fragment
/// (webhooks carry tokens there). `postgres://user:secret@host/db` →
/// `postgres://user:***@host/db`; `https://h/sms?token=abc` → `https://h/sms?***`.
pub fn mask_url_password(url: &str) -> String {
    let (url, hidden) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], "?***"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url}{hidden}");
    };
    // The credentials end at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let masked = match authority.rsplit_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{masked}{path}{hidden}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(mask_url_password("postgres://u:p4ss@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(mask_url_password("sqlite://./data/x.db"), "sqlite://./data/x.db");
        assert_eq!(mask_url_password("https://sms.example/hook?token=s3cr3t"), "https://sms.example/hook?***");
        assert_eq!(mask_url_password("https://tok3n@sms.example/hook"), "https://***@sms.example/hook");
        assert_eq!(mask_url_password("https://u:p@h/x#frag"), "https://u:***@h/x?***");
    }

    // figment's own error type, in its own test jail's signature.
    #[allow(clippy::result_large_err)]
    fn loaded(env: &[(&str, &str)], file: Option<&str>, serve: ServeFlags) -> Result<Loaded, String> {
        let mut out = None;
        figment::Jail::try_with(|jail| {
            jail.clear_env();
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let mut common = CommonFlags::default();
            if let Some(text) = file {
                jail.create_file("clientele.toml", text)?;
                common.config_file = Some("clientele.toml".into());
            }
            out = Some(Config::load(&common, Some(&serve)).map_err(|e| format!("{e:#}")));
            Ok(())
        })
        .expect("a jail for the environment");
        out.expect("loaded")
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        let file = "listen = \"0.0.0.0:9000\"\nrequest_timeout_ms = 2000\nsmtp_from = \"Shop <a@b.c>\"\n";
        let env = [("CLIENTELE_REQUEST_TIMEOUT_MS", "3000"), ("CLIENTELE_MAX_EXPORTS", "4")];
        let flags = ServeFlags { max_exports: Some(5), ..ServeFlags::default() };
        let l = loaded(&env, Some(file), flags).unwrap();
        let c = &l.config;
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!((c.limits.request_timeout_ms, c.limits.max_exports), (3000, 5));
        assert_eq!(c.smtp_from, "Shop <a@b.c>");
        assert_eq!(c.limits.io_timeout_ms, Limits::DEFAULT.io_timeout_ms);
        let shown = l.show();
        let from = |k: &str| shown["settings"][k]["from"].as_str().unwrap().to_owned();
        assert_eq!(from("listen"), "'listen' in clientele.toml");
        assert_eq!(from("request_timeout_ms"), "CLIENTELE_REQUEST_TIMEOUT_MS");
        assert_eq!(from("max_exports"), "--max-exports");
        assert_eq!(from("io_timeout_ms"), "default");
        assert_eq!(shown["masterKey"], "the file ./data/master.key");
    }

    #[test]
    fn a_bad_value_is_blamed_on_its_source() {
        let e = loaded(&[("CLIENTELE_LISTEN", "nonsense")], None, ServeFlags::default()).unwrap_err();
        assert!(e.contains("CLIENTELE_LISTEN") && !e.contains("--listen"), "{e}");
        let e = loaded(&[], Some("max_connections = 0\n"), ServeFlags::default()).unwrap_err();
        assert!(e.contains("'max_connections' in clientele.toml") && e.contains("from 1"), "{e}");
        let e = loaded(&[], Some("listn = \"x\"\n"), ServeFlags::default()).unwrap_err();
        assert!(e.contains("unknown setting 'listn' in clientele.toml"), "{e}");
        let l = loaded(&[("CLIENTELE_LISTN", "x")], None, ServeFlags::default()).unwrap();
        assert_eq!(l.warnings, ["CLIENTELE_LISTN is not a setting of Clientele; it is ignored"]);
        let flags = ServeFlags { request_timeout_ms: Some(60_000), ..ServeFlags::default() };
        let e = loaded(&[], None, flags).unwrap_err();
        assert!(e.contains("--request-timeout-ms is 60000"), "{e}");
    }

    #[test]
    fn secrets_show_as_stars_and_the_key_source_is_named() {
        let env = [
            ("CLIENTELE_MASTER_KEY", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="),
            ("CLIENTELE_DATABASE_URL", "postgres://app:pa55@db/clientele"),
            ("CLIENTELE_METRICS_TOKEN", "m3trics"),
        ];
        let shown = loaded(&env, None, ServeFlags::default()).unwrap().show();
        assert_eq!(shown["settings"]["master_key"]["value"], "***");
        assert_eq!(shown["settings"]["metrics_token"]["value"], "***");
        assert_eq!(shown["settings"]["database_url"]["value"], "postgres://app:***@db/clientele");
        assert_eq!(shown["masterKey"], "CLIENTELE_MASTER_KEY");
        assert!(!shown.to_string().contains("pa55") && !shown.to_string().contains("m3trics"));
    }
}
