//! Delivering the notification outbox: email over SMTP, SMS through an HTTP
//! webhook. A background task on every node polls for due messages, leases each
//! one (so no two nodes send it at once), sends it, and on failure retries with
//! exponential backoff. Messages are rows, so they survive restarts; with no
//! channel configured a message is marked `unsent` and the outbox is the record.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::crypto::Vault;
use crate::store::keys::secret_aad;
use crate::store::outbox::{OutboxMessage, Outcome};
use crate::store::{Db, now_ms};

/// After this many failed attempts a message is given up (`failed`).
pub const MAX_ATTEMPTS: i64 = 8;
/// How long a node holds a message it is sending.
const LEASE_MS: i64 = 60_000;

#[derive(Clone, Debug)]
pub struct Channels {
    /// `smtp://host:port` (plain), `smtp://…?tls=required`, or `smtps://user:pass@host`.
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Receives `POST {"to": "+1…", "message": "…"}`; any 2xx is delivered.
    pub sms_webhook: Option<String>,
    pub poll: Duration,
    /// The first retry waits this long; each next one twice as long (capped at an hour).
    pub retry_base: Duration,
}

/// Why a send failed, in words without personal data.
struct SendError(String);

pub struct Notifier {
    db: Db,
    vault: std::sync::Arc<Vault>,
    channels: Channels,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Notifier {
    pub fn new(db: Db, vault: std::sync::Arc<Vault>, channels: Channels) -> anyhow::Result<Notifier> {
        let smtp = match &channels.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.timeout(Some(Duration::from_secs(10))).build(),
            ),
            None => None,
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Notifier { db, vault, channels, http, smtp })
    }

    /// Polls until the task is dropped.
    pub async fn run(self) {
        loop {
            match self.deliver_due().await {
                Ok(0) => tokio::time::sleep(self.channels.poll).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox delivery pass failed");
                    tokio::time::sleep(self.channels.poll).await;
                }
            }
        }
    }

    /// One pass: every due message this node could lease; returns how many.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        let mut handled = 0;
        for m in self.db.due_messages(now, 20).await? {
            if !self.db.lease_message(&m, now + LEASE_MS).await? {
                continue; // another node has it
            }
            handled += 1;
            let result = self.send(&m).await;
            let now = now_ms();
            let (status, next, error, sent) = match result {
                Ok(()) => ("sent", now, None, Some(now)),
                Err(SendError(e)) if e.starts_with("no ") => ("unsent", now, Some(e), None),
                Err(SendError(e)) => {
                    let attempts = m.attempts + 1;
                    if attempts >= MAX_ATTEMPTS {
                        ("failed", now, Some(e), None)
                    } else {
                        let wait = self.channels.retry_base.as_millis() as i64 * (1i64 << attempts.min(20) as u32);
                        ("pending", now + wait.min(3_600_000), Some(e), None)
                    }
                }
            };
            if let Some(e) = &error {
                tracing::warn!(message_id = %m.id, channel = %m.channel, attempt = m.attempts + 1, status, error = %e, "notification not delivered");
            }
            metrics::counter!("clientele_notification_attempts_total", "channel" => m.channel.clone(), "outcome" => status)
                .increment(1);
            let counts = status != "sent" && status != "unsent";
            let outcome = Outcome { status, counts, next_attempt_at: next, error, sent_at: sent };
            self.db.settle_message(&m, outcome).await?;
        }
        Ok(handled)
    }

    async fn send(&self, m: &OutboxMessage) -> Result<(), SendError> {
        let open = |field: &str, blob: &[u8]| -> Result<String, SendError> {
            if let Some(v) = Vault::version_of(blob)
                && !self.vault.has_version(v)
            {
                return Err(SendError(format!("data key {v} not loaded")));
            }
            let clear =
                self.vault.open(blob, &secret_aad(m.merchant_id, m.id, field)).map_err(|e| SendError(e.to_string()))?;
            String::from_utf8(clear.to_vec()).map_err(|_| SendError("message is not UTF-8".into()))
        };
        let (to, text) = (open("outbox:recipient", &m.recipient)?, open("outbox:body", &m.body)?);
        match m.channel.as_str() {
            "email" => {
                let Some(smtp) = &self.smtp else { return Err(SendError("no email channel configured".into())) };
                let from: Mailbox = self
                    .channels
                    .smtp_from
                    .parse()
                    .map_err(|_| SendError("CLIENTELE_SMTP_FROM is not an address".into()))?;
                let to: Mailbox = to.parse().map_err(|_| SendError("recipient is not an address".into()))?;
                let email = Message::builder()
                    .from(from)
                    .to(to)
                    .subject("Your verification code")
                    .body(text)
                    .map_err(|e| SendError(format!("email could not be built: {e}")))?;
                smtp.send(email).await.map(|_| ()).map_err(|e| {
                    SendError(format!(
                        "SMTP: {}",
                        e.status().map_or_else(|| "connection failed".to_owned(), |c| c.to_string())
                    ))
                })
            }
            "sms" => {
                let Some(url) = &self.channels.sms_webhook else {
                    return Err(SendError("no SMS channel configured".into()));
                };
                let res =
                    self.http.post(url).json(&serde_json::json!({"to": to, "message": text})).send().await.map_err(
                        |e| {
                            SendError(format!(
                                "SMS webhook unreachable ({})",
                                if e.is_timeout() { "timeout" } else { "connection" }
                            ))
                        },
                    )?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(SendError(format!("SMS webhook answered {}", res.status().as_u16())))
                }
            }
            other => Err(SendError(format!("no channel named {other}"))),
        }
    }
}
