//! Configuration: defaults, then `CLIENTELE_*` environment variables, then flags
//! (clap resolves the layering). Secrets print as `***`.

use std::net::SocketAddr;
use std::path::PathBuf;

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
        v
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(mask_url_password("postgres://u:p4ss@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(mask_url_password("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }
}
