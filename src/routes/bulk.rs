//! Bulk import and export of customers as NDJSON, streamed both ways.

use crate::domain::event::EventType;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::ReadErrors;
use super::WriteErrors;
use super::customers::CustomerView;
use crate::AppState;
use crate::auth::{Authed, CustomersRead, CustomersWrite, Scope};
use crate::domain::Problems;
use crate::domain::custom::Declaration;
use crate::domain::customer::{CustomerInput, CustomerStatus, NewCustomer};
use crate::error::{ApiError, ApiResult};
use crate::store::{Actor, StoreError, WriteAborted, WriteTx};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_customers)).routes(routes!(export_customers))
}

/// Lines are committed this many at a time unless the importer is told otherwise
/// ([`Importer::lines_per_transaction`]): each transaction holds the database's
/// single writer (a few hundred milliseconds), and the service's own writes wait
/// behind it.
const BATCH: usize = 5000;
/// A line longer than this is refused (as a create body over the limit would be).
const MAX_LINE: usize = 1 << 20;

pub const NDJSON: &str = "application/x-ndjson";

/// A streamed NDJSON body of what `rx` receives. A closed channel keeps
/// answering "ended", so a layer that polls the body again after its end (the
/// compressor does) reads the end again rather than a panic.
fn ndjson_stream(mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn line(v: &impl Serialize) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn problems_map(p: Problems) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for x in p.into_vec() {
        map.entry(x.path).or_default().push(x.message);
    }
    map
}

/// The per-line results of an import.
#[derive(Default)]
struct Tally {
    created: u64,
    updated: u64,
    failed: u64,
}

/// A written line: its number, the customer's id, and whether it was created.
type Written = (usize, Uuid, bool);
/// Parsed lines with their numbers.
type Lines = Vec<(usize, NewCustomer)>;
/// A batch being committed.
type BatchWrite = JoinHandle<Result<Vec<Written>, StoreError>>;

/// A batch sent to be committed, with its lines (kept for the one-by-one retry)
/// and the customers its lines name (by `externalReference` or `id`).
struct InFlight {
    write: BatchWrite,
    lines: Arc<Lines>,
    names: Names,
}

/// What a batch's lines name their customers by: a batch that names a customer
/// an earlier batch in flight also names waits for that one to be settled, so
/// every line reads what the lines before it wrote.
#[derive(Default)]
struct Names {
    references: std::collections::HashSet<String>,
    ids: std::collections::HashSet<Uuid>,
}

impl Names {
    fn of(lines: &[(usize, NewCustomer)]) -> Names {
        let mut names = Names::default();
        for (_, new) in lines {
            if let Some(r) = &new.customer.external_reference {
                names.references.insert(r.clone());
            }
            if let Some(id) = new.customer.id {
                names.ids.insert(id);
            }
        }
        names
    }

    fn overlap(&self, other: &Names) -> bool {
        !self.references.is_disjoint(&other.references) || !self.ids.is_disjoint(&other.ids)
    }
}

pub struct Importer {
    state: AppState,
    actor: Actor,
    declarations: std::sync::Arc<[Declaration]>,
    active: Vec<String>,
    may_add_methods: bool,
    out: mpsc::Sender<Bytes>,
    tally: Tally,
    batch: Vec<(usize, NewCustomer)>,
    batch_lines: usize,
    /// The batches being written, oldest first.
    in_flight: std::collections::VecDeque<InFlight>,
    /// How many batches may be written at once.
    max_in_flight: usize,
}

/// Writes lines in one transaction, each replacing the customer with its
/// `externalReference`, else the one with its `id` (a line of an export names
/// its customer), else creating one — under the line's `id` when that is a
/// UUIDv7 no customer of the merchant has (a restore keeps references), else a
/// new one. Two queries find the references and ids already held; new rows skip
/// the per-line reference lookup (the unique index still guards it) and go in
/// many to a statement, and their `customer.created` events go in together. A
/// line's `status` is applied; the representation's other read-only fields are
/// ignored.
async fn upsert_batch(
    tx: &mut WriteTx,
    state: &AppState,
    active: &[String],
    lines: &[(usize, NewCustomer)],
) -> Result<Vec<Written>, StoreError> {
    let vault = state.vault();
    let refs: Vec<&str> = lines.iter().filter_map(|(_, new)| new.customer.external_reference.as_deref()).collect();
    let mut held = tx.customers_by_references(&refs).await?;
    let ids: Vec<Uuid> = lines.iter().filter_map(|(_, new)| new.customer.id).collect();
    let mut existing = tx.existing_customers(&ids).await?;
    let mut done = Vec::with_capacity(lines.len());
    let mut created_ids = Vec::with_capacity(lines.len());
    // New rows not yet inserted; anything that reads or extends a row inserts them first.
    let mut pending: Vec<(Uuid, &CustomerInput)> = Vec::new();
    for (n, new) in lines {
        let reference = new.customer.external_reference.as_deref();
        let sent = new.customer.id;
        let target = reference.and_then(|r| held.get(r).copied()).or(sent.filter(|id| existing.contains(id)));
        let (id, created) = match target {
            Some(id) => {
                tx.insert_customer_rows(&std::mem::take(&mut pending)).await?;
                tx.update_customer(id, &new.customer, None).await?;
                (id, false)
            }
            None => {
                let id = sent.filter(|id| id.get_version_num() == 7).unwrap_or_else(Uuid::now_v7);
                // A later line of this batch with the same id updates this one.
                existing.insert(id);
                pending.push((id, &new.customer));
                if let Some(r) = reference {
                    // A later line of this batch with the same reference updates this one.
                    held.insert(r.to_owned(), id);
                }
                created_ids.push(id);
                (id, true)
            }
        };
        let has_parts = new.customer.custom.touch_the_store() || new.brings_methods();
        if !created || has_parts {
            tx.insert_customer_rows(&std::mem::take(&mut pending)).await?;
            tx.write_parts(&vault, id, if created { &[] } else { active }, new).await?;
        }
        if let Some(status) = new.customer.status.filter(|s| *s != CustomerStatus::Active || !created) {
            tx.insert_customer_rows(&std::mem::take(&mut pending)).await?;
            tx.set_customer_status(id, status, None).await?;
        }
        done.push((*n, id, created));
    }
    tx.insert_customer_rows(&pending).await?;
    tx.events(EventType::CustomerCreated, &created_ids).await?;
    Ok(done)
}

impl Importer {
    /// An import on behalf of `actor`, writing its per-line results to `out`.
    pub async fn new(
        state: AppState,
        actor: Actor,
        may_add_methods: bool,
        out: mpsc::Sender<Bytes>,
    ) -> Result<Importer, sqlx::Error> {
        let declarations = state.db().scoped(actor.tenant).declarations().await?;
        let active = crate::domain::custom::active_names(&declarations);
        let max_in_flight = state.db().backend().bulk_writes_in_flight();
        Ok(Importer {
            state,
            actor,
            declarations,
            active,
            may_add_methods,
            out,
            tally: Tally::default(),
            batch: Vec::new(),
            batch_lines: BATCH,
            in_flight: std::collections::VecDeque::new(),
            max_in_flight,
        })
    }

    /// Commits `lines` lines per transaction. Larger transactions write less: the
    /// index pages a batch touches are written once per commit, so 4 times the
    /// lines costs far less than 4 times the writing; but each holds the writer
    /// (and the service's writes wait) for longer.
    pub fn lines_per_transaction(mut self, lines: usize) -> Importer {
        self.batch_lines = lines.max(1);
        self
    }

    async fn send(&self, v: Value) -> bool {
        self.out.send(line(&v)).await.is_ok()
    }

    async fn fail(&mut self, n: usize, errors: BTreeMap<String, Vec<String>>) {
        self.tally.failed += 1;
        self.send(json!({"line": n, "errors": errors})).await;
    }

    async fn take_line(&mut self, n: usize, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("The line is not valid JSON (column {}).", e.column());
                return self.fail(n, BTreeMap::from([("$".to_owned(), vec![msg])])).await;
            }
        };
        match CustomerInput::parse_import(&value, &self.declarations) {
            Ok(new) if !self.may_add_methods && new.brings_methods() => {
                let msg = "Adding payment methods needs the 'payment_methods:write' scope.".to_owned();
                self.fail(n, BTreeMap::from([("paymentMethodsCards".to_owned(), vec![msg])])).await;
            }
            Ok(new) => {
                self.batch.push((n, new));
                if self.batch.len() >= self.batch_lines {
                    self.flush().await;
                }
            }
            Err(p) => self.fail(n, problems_map(p)).await,
        }
    }

    /// Sends the batch to be committed in one transaction, while the next batch is
    /// parsed (and, where the database writes transactions side by side, while
    /// earlier batches are still being written). Batches are settled oldest
    /// first, so results stay in line order.
    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let names = Names::of(&self.batch);
        while self.in_flight.len() >= self.max_in_flight || self.in_flight.iter().any(|b| b.names.overlap(&names)) {
            self.settle().await;
        }
        let lines = Arc::new(std::mem::take(&mut self.batch));
        let (state, active, actor, shared) =
            (self.state.clone(), self.active.clone(), self.actor.clone(), lines.clone());
        let write = tokio::spawn(async move {
            let db = state.db().clone();
            db.write_bulk(actor, move |mut tx| async move {
                let done = upsert_batch(&mut tx, &state, &active, &shared).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(done)
            })
            .await
        });
        self.in_flight.push_back(InFlight { write, lines, names });
    }

    /// Reports the oldest batch in flight. If any of its lines failed, the batch
    /// was rolled back: its lines are then written one by one, so only that line
    /// fails (the batches in flight beside it name none of its customers).
    async fn settle(&mut self) {
        let Some(InFlight { write, lines, .. }) = self.in_flight.pop_front() else { return };
        let outcome = write.await.unwrap_or_else(|e| Err(StoreError::Aborted(WriteAborted::failed(e.to_string()))));
        if let Ok(done) = outcome {
            return self.report_written(done).await;
        }
        // The write has finished, so this is the only handle left.
        let lines = match Arc::try_unwrap(lines) {
            Ok(lines) => lines,
            Err(shared) => {
                let why = || BTreeMap::from([("$".to_owned(), vec!["The line could not be written.".to_owned()])]);
                for (n, _) in shared.iter() {
                    self.fail(*n, why()).await;
                }
                return;
            }
        };
        for line in lines {
            let (state, active, n) = (self.state.clone(), self.active.clone(), line.0);
            let r = self
                .state
                .db()
                .write(self.actor.clone(), move |mut tx| async move {
                    let done = upsert_batch(&mut tx, &state, &active, std::slice::from_ref(&line)).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(done)
                })
                .await;
            match r {
                Ok(done) => self.report_written(done).await,
                Err(e) => self.report(n, Err(e)).await,
            }
        }
    }

    async fn report_written(&mut self, done: Vec<Written>) {
        for (n, id, created) in done {
            self.report(n, Ok((id, created))).await;
        }
    }

    async fn report(&mut self, n: usize, r: Result<(Uuid, bool), StoreError>) {
        match r {
            Ok((id, created)) => {
                if created {
                    self.tally.created += 1;
                } else {
                    self.tally.updated += 1;
                }
                self.send(json!({"line": n, "id": id, "result": if created { "created" } else { "updated" }})).await;
            }
            Err(e) => {
                let api = ApiError::from(e);
                let body = api.body();
                let errors = if body.errors.is_empty() {
                    BTreeMap::from([("$".to_owned(), vec![body.details])])
                } else {
                    body.errors
                };
                self.fail(n, errors).await;
            }
        }
    }

    pub async fn run(mut self, body: Body) {
        let mut stream = body.into_data_stream();
        let (mut buf, mut n, mut skipping) = (Vec::<u8>::new(), 0usize, false);
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                self.send(json!({"error": "The upload was interrupted; lines before it were imported."})).await;
                break;
            };
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(len) = buf[start..].iter().position(|b| *b == b'\n') {
                let end = start + len;
                n += 1;
                if !std::mem::take(&mut skipping) {
                    // (else the tail of an over-long line, already reported)
                    self.take_line(n, &buf[start..end]).await;
                }
                start = end + 1;
            }
            buf.drain(..start);
            if buf.len() > MAX_LINE && !skipping {
                self.fail(n + 1, BTreeMap::from([("$".to_owned(), vec!["The line is longer than 1 MiB.".to_owned()])]))
                    .await;
                buf.clear();
                skipping = true;
            }
        }
        if !buf.is_empty() && !skipping {
            n += 1;
            let raw = std::mem::take(&mut buf);
            self.take_line(n, &raw).await;
        }
        self.flush().await;
        while !self.in_flight.is_empty() {
            self.settle().await;
        }
        let written = self.tally.created + self.tally.updated;
        if written >= BATCH as u64
            && let Err(e) = self.state.db().settle_bulk_load(written).await
        {
            tracing::warn!(error = %e, "settling the database after an import failed");
        }
        let t = &self.tally;
        let summary = json!({"summary": {"lines": n, "created": t.created, "updated": t.updated, "failed": t.failed}});
        self.send(summary).await;
    }
}

/// Import customers (NDJSON)
///
/// One create body per line (`Content-Type: application/x-ndjson`), streamed:
/// the upload is never held whole. Each line is validated like a create; a line
/// with an `externalReference` already held replaces that customer. Lines are
/// committed 5,000 at a time; a bad line fails alone. The reply streams one result
/// per line — `{"line", "id", "result": "created"|"updated"}` or `{"line",
/// "errors"}` — and ends with `{"summary": {lines, created, updated, failed}}`.
#[utoipa::path(post, path = "/customers/import", tag = "customers",
    request_body(content = String, content_type = "application/x-ndjson", description = "One customer create body per line"),
    responses((status = 200, description = "Per-line results (NDJSON)", content_type = "application/x-ndjson", body = String), WriteErrors),
    security(("bearer" = ["customers:write"])))]
async fn import_customers(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    req: Request,
) -> ApiResult<Response> {
    let ct = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(essence.as_str(), NDJSON | "application/jsonl" | "application/ndjson") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "UnsupportedMediaTypeException",
            "Imports are sent as 'Content-Type: application/x-ndjson', one customer per line.",
        ));
    }
    let (out, results) = mpsc::channel::<Bytes>(256);
    let importer =
        Importer::new(state, auth.actor(), auth.ctx.scopes.contains(&Scope::PaymentMethodsWrite), out).await?;
    tokio::spawn(importer.run(req.into_body()));
    // The results go through a spool: the upload is read on whether or not the
    // client reads its results yet (most clients send it all first).
    let (reply, rx) = mpsc::channel(16);
    tokio::spawn(crate::http::spool::pump(results, reply));
    let mut res = (StatusCode::OK, ndjson_stream(rx)).into_response();
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(res)
}

/// One NDJSON line per customer of an export batch.
pub fn export_lines((rows, mut custom): crate::store::customers::ExportBatch) -> Bytes {
    let mut chunk = Vec::with_capacity(rows.len() * 700);
    for r in rows {
        let values = custom.remove(&r.id).unwrap_or_default();
        let mut view = CustomerView::from(r);
        for (name, value) in values {
            view.custom.insert(name, serde_json::from_str(&value).unwrap_or(Value::Null));
        }
        chunk.extend_from_slice(&line(&view));
    }
    Bytes::from(chunk)
}

/// The exports streaming at once: a few in all, one per merchant. Each holds a
/// read snapshot (on PostgreSQL, a connection of the export pool) for as long as
/// its client reads, so their number is bounded like connections are.
pub struct ExportSlots {
    all: Arc<tokio::sync::Semaphore>,
    merchants: Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
}

/// A running export's slot, given back when it is dropped.
pub struct ExportSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    merchant: Uuid,
    merchants: Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        self.merchants.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.merchant);
    }
}

impl ExportSlots {
    pub fn new(max: u32) -> ExportSlots {
        ExportSlots { all: Arc::new(tokio::sync::Semaphore::new(max.max(1) as usize)), merchants: Arc::default() }
    }

    /// A slot for `merchant`'s export, or why there is none.
    fn take(&self, merchant: Uuid) -> Result<ExportSlot, ApiError> {
        let mut running = self.merchants.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(&merchant) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "export_in_progress",
                "TooManyRequestsException",
                "An export of this merchant's customers is already streaming; one runs at a time.",
            );
            e.set_retry_after(5);
            return Err(e);
        }
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "export_busy",
                "ServiceUnavailableException",
                "Every export slot is in use (CLIENTELE_MAX_EXPORTS); retry shortly.",
            );
            e.set_retry_after(5);
            return Err(e);
        };
        running.insert(merchant);
        Ok(ExportSlot { _permit: permit, merchant, merchants: self.merchants.clone() })
    }
}

/// The line that ends a stream which failed midway, so that what the client got
/// can never pass for the whole. (Breaking the transfer instead would lose the
/// line: hyper drops what it has not yet written when a body fails.)
async fn fail_stream(out: &mpsc::Sender<Result<Bytes, std::io::Error>>, why: &str) {
    let _ = out.send(Ok(line(&json!({"error": why})))).await;
}

/// Export customers (NDJSON)
///
/// Every customer of the merchant, one representation per line (as in search
/// items, with non-secret custom parameters), streamed from one consistent
/// snapshot while writes go on. No card, bank or secret data. One export per
/// merchant at a time (429 `export_in_progress`), a few in all (503
/// `export_busy`). An export that fails midway, or runs past
/// `CLIENTELE_EXPORT_TIMEOUT_S`, ends with an `{"error"}` line, never with what
/// looks like a complete file.
#[utoipa::path(get, path = "/customers/export", tag = "customers",
    responses((status = 200, description = "One customer per line", content_type = "application/x-ndjson", body = String), ReadErrors,
        (status = 429, description = "An export of this merchant is already streaming (`export_in_progress`), or too many requests (`rate_limited`)", body = crate::error::ErrorBody)),
    security(("bearer" = ["customers:read"])))]
async fn export_customers(State(state): State<AppState>, auth: Authed<CustomersRead>) -> ApiResult<Response> {
    let slot = state.exports().take(auth.tenant().id())?;
    // A couple of batches (~0.5 MB each) in each hand-off: enough to keep the
    // socket fed, little for a client that reads slowly to pile up.
    let (batches_tx, mut batches) = mpsc::channel(2);
    let (out, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let (db, tenant) = (state.db().clone(), auth.tenant());
    let producer = tokio::spawn(async move { db.export_customers(tenant, &batches_tx).await });
    let limit = Duration::from_secs(state.limits().export_timeout_s);
    tokio::spawn(async move {
        let _slot = slot;
        let deadline = tokio::time::Instant::now() + limit;
        let timed_out = async |out: &mpsc::Sender<Result<Bytes, std::io::Error>>| {
            let why = format!(
                "The export ran longer than {} s and was stopped; export from the command line (clientele export) instead.",
                limit.as_secs()
            );
            fail_stream(out, &why).await;
        };
        loop {
            let batch = match tokio::time::timeout_at(deadline, batches.recv()).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                // Dropping `batches` stops the reading.
                Err(_) => return timed_out(&out).await,
            };
            match tokio::time::timeout_at(deadline, out.send(Ok(export_lines(batch)))).await {
                Ok(Ok(())) => {}
                // The client is gone.
                Ok(Err(_)) => return,
                Err(_) => return timed_out(&out).await,
            }
        }
        match producer.await {
            Ok(Ok(())) => {}
            failed => {
                tracing::error!(result = ?failed.map(|r| r.map_err(|e| e.to_string())), "an export failed midway");
                fail_stream(&out, "The export failed midway; what came before this line is not the whole.").await;
            }
        }
    });
    let mut res = (StatusCode::OK, ndjson_stream(rx)).into_response();
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(res)
}
