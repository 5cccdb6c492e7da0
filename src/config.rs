//! Configuration: defaults, then `CLIENTELE_*` environment variables, then flags
//! (clap resolves the layering). Secrets print as `***`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::crypto::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLIENTELE_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created with its folder when missing) or `postgres://...`.
    #[arg(long, env = "CLIENTELE_DATABASE_URL", default_value = "sqlite://./data/clientele.db", global = true)]
    pub database_url: String,
    /// Where the generated master key is kept when CLIENTELE_MASTER_KEY is not set.
    #[arg(long, env = "CLIENTELE_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Base64 of 32 random bytes; encrypts payment data at rest.
    #[arg(long, env = "CLIENTELE_MASTER_KEY", hide_env_values = true, global = true)]
    pub master_key: Option<SecretString>,
    /// Log lines as text or JSON.
    #[arg(long, env = "CLIENTELE_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Database connections per pool.
    #[arg(long, env = "CLIENTELE_DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub db_max_connections: u32,
    /// Email channel of the notification outbox: `smtp://host:port`, `smtp://…?tls=required` or `smtps://user:pass@host`.
    #[arg(long, env = "CLIENTELE_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// The sender of notification emails.
    #[arg(long, env = "CLIENTELE_SMTP_FROM", default_value = "Clientele <no-reply@localhost>", global = true)]
    pub smtp_from: String,
    /// SMS channel: receives `POST {"to", "message"}`; any 2xx counts as delivered.
    #[arg(long, env = "CLIENTELE_SMS_WEBHOOK_URL", global = true)]
    pub sms_webhook_url: Option<String>,
    /// How often the outbox is polled, in milliseconds.
    #[arg(long, env = "CLIENTELE_OUTBOX_POLL_MS", default_value_t = 1000, global = true)]
    pub outbox_poll_ms: u64,
    /// The first retry of a failed delivery waits this long (ms); each next one twice as long.
    #[arg(long, env = "CLIENTELE_OUTBOX_RETRY_MS", default_value_t = 2000, global = true)]
    pub outbox_retry_ms: u64,
    /// Let webhook deliveries connect to loopback, private and link-local addresses
    /// (a receiver on the same machine or network; refused by default).
    #[arg(long, env = "CLIENTELE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhooks_allow_private_networks: bool,
    /// One webhook attempt's time limit, connection included (ms).
    #[arg(long, env = "CLIENTELE_WEBHOOKS_TIMEOUT_MS", default_value_t = 5000, global = true)]
    pub webhooks_timeout_ms: u64,
    /// How often each node reads the event feed and the delivery queue for work
    /// other nodes made (its own writes wake it at once), in milliseconds.
    #[arg(long, env = "CLIENTELE_WEBHOOKS_POLL_MS", default_value_t = 1000, global = true)]
    pub webhooks_poll_ms: u64,
    /// The first retry of a failed webhook waits about this long (ms); each next
    /// one twice as long (at most six hours), with ±20 % jitter.
    #[arg(long, env = "CLIENTELE_WEBHOOKS_RETRY_MS", default_value_t = 5000, global = true)]
    pub webhooks_retry_ms: u64,
    /// How long a webhook delivery is retried before it is marked failed (seconds; 3 days).
    #[arg(long, env = "CLIENTELE_WEBHOOKS_RETRY_FOR_S", default_value_t = 259_200, global = true)]
    pub webhooks_retry_for_s: u64,
    /// An endpoint whose deliveries fail continuously this long is disabled (seconds; 5 days).
    #[arg(long, env = "CLIENTELE_WEBHOOKS_DISABLE_AFTER_S", default_value_t = 432_000, global = true)]
    pub webhooks_disable_after_s: u64,
    /// Serve `/metrics` on this address instead of the API's (e.g. `127.0.0.1:9090`).
    #[arg(long, env = "CLIENTELE_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// When set, `/metrics` answers only `Authorization: Bearer <this token>`.
    #[arg(long, env = "CLIENTELE_METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<SecretString>,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
}

/// What one client can make the service spend: time, connections, rates.
#[derive(Debug, Clone, Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Longest a request may take to be answered (ms; at most 50,000, shorter than
    /// an Idempotency-Key's claim, so a retry never runs beside the request).
    #[arg(long, env = "CLIENTELE_REQUEST_TIMEOUT_MS", default_value_t = Limits::DEFAULT.request_timeout_ms,
        value_parser = clap::value_parser!(u64).range(100..=MAX_REQUEST_TIMEOUT_MS as u64), global = true)]
    pub request_timeout_ms: u64,
    /// Longest one database read may run before it is interrupted (ms).
    #[arg(long, env = "CLIENTELE_QUERY_TIMEOUT_MS", default_value_t = Limits::DEFAULT.query_timeout_ms,
        value_parser = clap::value_parser!(u64).range(10..=600_000), global = true)]
    pub query_timeout_ms: u64,
    /// A client must send a request's headers within this (ms) of starting it.
    #[arg(long, env = "CLIENTELE_HEADER_TIMEOUT_MS", default_value_t = Limits::DEFAULT.header_timeout_ms,
        value_parser = clap::value_parser!(u64).range(100..=600_000), global = true)]
    pub header_timeout_ms: u64,
    /// A connection with nothing to do for this long is closed (ms).
    #[arg(long, env = "CLIENTELE_IDLE_TIMEOUT_MS", default_value_t = Limits::DEFAULT.idle_timeout_ms,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000), global = true)]
    pub idle_timeout_ms: u64,
    /// An upload that sends nothing for this long fails, and a reply the client
    /// does not read for this long ends its connection (ms).
    #[arg(long, env = "CLIENTELE_IO_TIMEOUT_MS", default_value_t = Limits::DEFAULT.io_timeout_ms,
        value_parser = clap::value_parser!(u64).range(100..=600_000), global = true)]
    pub io_timeout_ms: u64,
    /// Connections open at once; further ones wait to be accepted.
    #[arg(long, env = "CLIENTELE_MAX_CONNECTIONS", default_value_t = Limits::DEFAULT.max_connections,
        value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: u32,
    /// Exports streaming at once (one per merchant).
    #[arg(long, env = "CLIENTELE_MAX_EXPORTS", default_value_t = Limits::DEFAULT.max_exports,
        value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_exports: u32,
    /// Longest an export may stream (s).
    #[arg(long, env = "CLIENTELE_EXPORT_TIMEOUT_S", default_value_t = Limits::DEFAULT.export_timeout_s,
        value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub export_timeout_s: u64,
    /// Requests per second one API key may make, in bursts of up to twice as
    /// many (0: no limit).
    #[arg(long, env = "CLIENTELE_RATE_LIMIT_PER_KEY", default_value_t = Limits::DEFAULT.rate_limit_per_key, global = true)]
    pub rate_limit_per_key: u32,
    /// Requests per second one client address may make, in bursts of up to twice
    /// as many (0: no limit). Behind a proxy every client has the proxy's address.
    #[arg(long, env = "CLIENTELE_RATE_LIMIT_PER_ADDRESS", default_value_t = Limits::DEFAULT.rate_limit_per_address, global = true)]
    pub rate_limit_per_address: u32,
    /// Failed authentications per minute one client address may make (0: no limit).
    #[arg(long, env = "CLIENTELE_AUTH_FAILURES_PER_MINUTE", default_value_t = Limits::DEFAULT.auth_failures_per_minute, global = true)]
    pub auth_failures_per_minute: u32,
    /// Verification codes (SMS and email) one merchant may send per minute.
    #[arg(long, env = "CLIENTELE_VERIFICATION_SENDS_PER_MINUTE", default_value_t = Limits::DEFAULT.verification_sends_per_minute,
        value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub verification_sends_per_minute: u32,
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

impl Config {
    /// The configuration as JSON with secrets masked and credentials removed from the URL.
    pub fn show(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(url) = v.get_mut("databaseUrl") {
            *url = serde_json::Value::String(mask_url_password(&self.database_url));
        }
        if let (Some(url), Some(smtp)) = (v.get_mut("smtpUrl"), &self.smtp_url) {
            *url = serde_json::Value::String(mask_url_password(smtp));
        }
        if let (Some(url), Some(sms)) = (v.get_mut("smsWebhookUrl"), &self.sms_webhook_url) {
            *url = serde_json::Value::String(mask_url_password(sms));
        }
        v
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

    #[test]
    fn the_default_limits_are_the_command_line_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            limits: Limits,
        }
        let parsed = Cli::try_parse_from(["clientele"]).unwrap().limits;
        assert_eq!(serde_json::to_value(parsed).unwrap(), serde_json::to_value(Limits::default()).unwrap());
    }
}
