//! Pushing events to webhook endpoints. A background task on every node
//! queues deliveries from the event feed (each endpoint follows it with a
//! cursor, [`crate::store::webhooks`]), leases the due ones in the database (so
//! no two nodes send the same attempt at once, and a node that dies leaves its
//! leases to expire and be taken again), and sends them signed the Standard
//! Webhooks way. Every connection goes only to public addresses, checked after
//! name resolution, unless private networks are allowed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore, mpsc};
use uuid::Uuid;

use crate::crypto::Vault;
use crate::domain::webhook::{SigningSecret, address_allowed};
use crate::store::keys::secret_aad;
use crate::store::webhooks::{Attempt, DueDelivery, PREVIOUS_SECRET_FIELD, SECRET_FIELD};
use crate::store::{Db, now_ms};

/// Attempts in flight on one node at most, and at most per endpoint (each
/// endpoint has a worker of its own, so one slow receiver holds back no other).
const IN_FLIGHT: usize = 64;
const PER_ENDPOINT: usize = 8;
/// Deliveries an endpoint's worker leases at once.
const LEASE_BATCH: i64 = 64;
/// Finished attempts recorded in one transaction at most.
const RECORD_BATCH: usize = 512;
/// Endpoints one pass dispatches at most.
const DISPATCH_ENDPOINTS: i64 = 100;
/// A reply body is read up to this much (and thrown away), never logged.
const REPLY_READ_LIMIT: usize = 4096;
/// Passes run at most this often, however often writes wake the task.
const MIN_PASS_GAP: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Deliveries may connect to loopback, private and link-local addresses.
    pub allow_private_networks: bool,
    /// One attempt's limit, connection included.
    pub timeout: Duration,
    /// How often the feed and the queue are read when no local write wakes the task.
    pub poll: Duration,
    pub retry: crate::store::webhooks::RetryPolicy,
}

/// Refuses a destination: its address is not one deliveries may reach.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The HTTP client's name resolution: only the addresses deliveries may reach,
/// so that a name cannot resolve to an inside address at connection time.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| allow_private || address_allowed(a.ip())).collect();
            if allowed.is_empty() {
                let why = if addrs.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    format!(
                        "{host} resolves only to addresses deliveries may not reach (loopback, private, link-local)"
                    )
                };
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The address a URL names directly (no name to resolve), if it does.
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Checks a destination at registration: an address in the URL must be one
/// deliveries may reach, and so must every address its name resolves to now. A
/// name that does not resolve yet is accepted (every connection checks again).
pub async fn check_destination(url: &url::Url, allow_private: bool) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    let refused = |what: &str| {
        Refused(format!("{what} is not an address deliveries may reach (loopback, private, link-local or reserved)."))
    };
    if let Some(ip) = literal_ip(url) {
        return if address_allowed(ip) { Ok(()) } else { Err(refused(&ip.to_string())) };
    }
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host((name, 0))).await;
            if let Ok(Ok(addrs)) = lookup {
                for a in addrs {
                    if !address_allowed(a.ip()) {
                        return Err(Refused(format!(
                            "{name} resolves to {}, which is not an address deliveries may reach (loopback, private, link-local or reserved).",
                            a.ip()
                        )));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub struct Webhooks {
    db: Db,
    vault: Arc<Vault>,
    settings: Settings,
    http: reqwest::Client,
    /// Attempts in flight on this node.
    sending: Arc<Semaphore>,
    /// Endpoints a worker of this node is sending for.
    working: Arc<Mutex<HashSet<Uuid>>>,
    /// Woken by this node's writes.
    wake: Arc<Notify>,
}

/// An endpoint's place in the set of those with a worker, left when dropped.
struct Working(Arc<Mutex<HashSet<Uuid>>>, Uuid);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

/// A finished attempt, on its way to be recorded.
type Finished = (DueDelivery, Attempt);

impl Webhooks {
    pub fn new(db: Db, vault: Arc<Vault>, settings: Settings) -> anyhow::Result<Webhooks> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(PER_ENDPOINT)
            .user_agent(concat!("Clientele-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private_networks }))
            .build()?;
        let wake = db.writes_committed();
        Ok(Webhooks {
            db,
            vault,
            settings,
            http,
            sending: Arc::new(Semaphore::new(IN_FLIGHT)),
            working: Arc::default(),
            wake,
        })
    }

    /// Dispatches and delivers until the task is dropped.
    pub async fn run(self) {
        let this = Arc::new(self);
        let (finished, outcomes) = mpsc::channel::<Finished>(4 * IN_FLIGHT);
        let recorder = tokio::spawn(this.clone().record(outcomes));
        loop {
            let started = Instant::now();
            let more = match this.pass(&finished).await {
                Ok(more) => more,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed");
                    false
                }
            };
            if !more {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(this.settings.poll) => {}
                }
            }
            let gap = MIN_PASS_GAP.saturating_sub(started.elapsed());
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if recorder.is_finished() {
                return;
            }
        }
    }

    /// Queues new events, then starts a worker for each endpoint with deliveries
    /// due that has none on this node. True when the feed has more at once.
    async fn pass(self: &Arc<Self>, finished: &mpsc::Sender<Finished>) -> anyhow::Result<bool> {
        let retry = self.settings.retry;
        let mut more = false;
        for (merchant, endpoint) in self.db.webhook_endpoints_behind(DISPATCH_ENDPOINTS).await? {
            let passed = self.db.dispatch_webhook_events(merchant, endpoint, retry).await?;
            more |= passed >= 500;
        }
        for (merchant, endpoint) in self.db.webhook_endpoints_due(now_ms()).await? {
            if self.working.lock().unwrap_or_else(|e| e.into_inner()).insert(endpoint) {
                let (this, finished) = (self.clone(), finished.clone());
                tokio::spawn(async move {
                    // However the worker ends, the endpoint can have another.
                    let _done = Working(this.working.clone(), endpoint);
                    if let Err(e) = this.work(merchant, endpoint, finished).await {
                        tracing::warn!(endpoint_id = %endpoint, error = %e, "webhook worker stopped");
                    }
                });
            }
        }
        Ok(more)
    }

    /// Sends an endpoint's due deliveries, a leased batch at a time, at most
    /// [`PER_ENDPOINT`] at once, until none is due.
    async fn work(&self, merchant: Uuid, endpoint: Uuid, finished: mpsc::Sender<Finished>) -> anyhow::Result<()> {
        // Past its lease an attempt is taken again by any node: the lease outlasts
        // the batch's rounds of attempts at their time limit (twice over), plus
        // the recording of their outcomes.
        let rounds = (LEASE_BATCH as u32).div_ceil(PER_ENDPOINT as u32);
        let lease_ms = 2 * (self.settings.timeout * rounds).as_millis() as i64 + 5_000;
        loop {
            let now = now_ms();
            let batch = self.db.lease_webhook_deliveries(merchant, endpoint, now, LEASE_BATCH, now + lease_ms).await?;
            if batch.is_empty() {
                return Ok(());
            }
            futures_util::stream::iter(batch)
                .for_each_concurrent(PER_ENDPOINT, |d| async {
                    let Ok(_slot) = self.sending.acquire().await else { return };
                    let attempt = self.send(&d).await;
                    if let Some(e) = &attempt.error {
                        tracing::info!(delivery_id = %d.id, endpoint_id = %d.endpoint_id, error = %e, "webhook not delivered");
                    }
                    let outcome = if attempt.error.is_none() { "delivered" } else { "failed" };
                    metrics::counter!("clientele_webhook_attempts_total", "outcome" => outcome).increment(1);
                    // Unrecorded (the task is stopping), the lease runs out and it is sent again.
                    let _ = finished.send((d, attempt)).await;
                })
                .await;
        }
    }

    /// Records finished attempts, as many as have arrived in one transaction per
    /// merchant.
    async fn record(self: Arc<Self>, mut outcomes: mpsc::Receiver<Finished>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let mut by_merchant: HashMap<Uuid, Vec<Finished>> = HashMap::new();
            for f in batch.drain(..) {
                by_merchant.entry(f.0.merchant_id).or_default().push(f);
            }
            for (merchant, attempts) in by_merchant {
                let n = attempts.len();
                if let Err(e) = self.db.settle_webhook_deliveries(merchant, attempts, self.settings.retry).await {
                    // Their leases run out and they are attempted again.
                    tracing::warn!(error = %e, attempts = n, "could not record webhook attempts");
                }
            }
        }
    }

    async fn open(&self, d: &DueDelivery, blob: &[u8], field: &str) -> Result<SigningSecret, String> {
        if let Some(v) = Vault::version_of(blob) {
            self.db.ensure_key(&self.vault, v).await.map_err(|e| e.to_string())?;
        }
        let clear = self
            .vault
            .open(blob, &secret_aad(d.merchant_id, d.endpoint_id, field))
            .map_err(|e| format!("signing secret could not be opened: {e}"))?;
        String::from_utf8(clear.to_vec())
            .ok()
            .and_then(SigningSecret::from_text)
            .ok_or_else(|| "signing secret is damaged".to_owned())
    }

    /// One attempt: signed with the endpoint's secret (and the previous one while
    /// it still signs), `webhook-id` the event's id on every attempt.
    async fn send(&self, d: &DueDelivery) -> Attempt {
        let failed = |error: String| Attempt { status_code: None, latency_ms: 0, error: Some(error) };
        let Ok(url) = url::Url::parse(&d.url) else { return failed("the endpoint's URL does not parse".into()) };
        if !self.settings.allow_private_networks
            && let Some(ip) = literal_ip(&url).filter(|ip| !address_allowed(*ip))
        {
            return failed(format!(
                "{ip} is not an address deliveries may reach (loopback, private, link-local or reserved)"
            ));
        }
        let secret = match self.open(d, &d.secret, SECRET_FIELD).await {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let (id, timestamp) = (d.event_id.to_string(), now_ms() / 1000);
        let body = d.payload.as_bytes();
        let mut signature = secret.sign(&id, timestamp, body);
        if let (Some(previous), Some(until)) = (&d.previous_secret, d.previous_expires_at)
            && until > now_ms()
        {
            match self.open(d, previous, PREVIOUS_SECRET_FIELD).await {
                Ok(s) => {
                    signature.push(' ');
                    signature.push_str(&s.sign(&id, timestamp, body));
                }
                Err(e) => return failed(e),
            }
        }
        let started = Instant::now();
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as i64;
        metrics::histogram!("clientele_webhook_attempt_seconds").record(started.elapsed().as_secs_f64());
        match sent {
            Ok(mut res) => {
                let status = res.status();
                // Read a little of the reply (so the connection can be reused), never keep it.
                let mut read = 0;
                while read < REPLY_READ_LIMIT {
                    match res.chunk().await {
                        Ok(Some(c)) => read += c.len(),
                        _ => break,
                    }
                }
                let code = Some(i64::from(status.as_u16()));
                if status.is_success() {
                    Attempt { status_code: code, latency_ms, error: None }
                } else {
                    Attempt {
                        status_code: code,
                        latency_ms,
                        error: Some(format!("endpoint answered {}", status.as_u16())),
                    }
                }
            }
            Err(e) => Attempt { status_code: None, latency_ms, error: Some(describe(&e)) },
        }
    }
}

/// What went wrong with a request, in words without its content.
fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return r.0.clone();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "redirect not followed".into()
    } else {
        "request failed".into()
    }
}
