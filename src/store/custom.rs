//! Custom parameter declarations and the values customers hold for them.

use crate::domain::event::EventType;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::keys::secret_aad;
use super::query::Param;
use super::query::{record, sqlite_rows};
use super::{Scoped, StoreError, WriteTx, on_conn, placeholders};
use crate::crypto::Vault;
use crate::domain::custom::{CustomValues as BodyValues, Declaration, DeclarationInput, ParamType, Unchanged};

record! {
    struct DeclRow {
        id: Uuid,
        name: String,
        kind: String as "type",
        required: bool,
        secret: bool,
        description: Option<String>,
        retired_at: Option<i64>,
    }
}

impl From<DeclRow> for Declaration {
    fn from(r: DeclRow) -> Self {
        Declaration {
            id: r.id,
            name: r.name,
            kind: ParamType::parse(&r.kind).unwrap_or(ParamType::String),
            required: r.required,
            secret: r.secret,
            description: r.description,
            retired: r.retired_at.is_some(),
        }
    }
}

const DECL_COLUMNS: &str = DeclRow::COLUMNS;

/// The AAD of a secret custom value: merchant, customer and parameter name.
pub fn custom_aad(merchant: Uuid, customer: Uuid, name: &str) -> Vec<u8> {
    secret_aad(merchant, customer, &format!("custom:{name}"))
}

/// How long a merchant's declarations, once read, are used without reading them
/// again: a declaration changed on another node applies on this one within this
/// time (on the node that changed it, at once), as a revoked key stops working
/// ([`crate::auth::KEY_CACHE_TTL`]). Every create and update needs them.
pub const DECLARATIONS_TTL: Duration = Duration::from_secs(1);
/// Merchants kept at most; the cache starts over when full.
const DECLARATIONS_CAPACITY: usize = 10_000;

/// Declarations by merchant, each with the instant it was read; shared by the
/// `Db`'s clones.
#[derive(Clone, Default)]
pub(crate) struct DeclarationCache(Arc<Mutex<CachedDeclarations>>);

#[derive(Default)]
struct CachedDeclarations {
    by_merchant: HashMap<Uuid, (Arc<[Declaration]>, Instant)>,
    /// Counts changes, so that a read begun before one does not store what it
    /// read after it.
    changes: u64,
}

impl DeclarationCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedDeclarations> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The merchant's declarations if read recently, else the change count to
    /// store a fresh read under.
    fn get(&self, merchant: Uuid) -> Result<Arc<[Declaration]>, u64> {
        let cached = self.lock();
        match cached.by_merchant.get(&merchant) {
            Some((d, at)) if at.elapsed() < DECLARATIONS_TTL => Ok(d.clone()),
            _ => Err(cached.changes),
        }
    }

    fn put(&self, merchant: Uuid, read_after: u64, declarations: Arc<[Declaration]>, at: Instant) {
        let mut cached = self.lock();
        if cached.changes != read_after {
            return;
        }
        if cached.by_merchant.len() >= DECLARATIONS_CAPACITY {
            cached.by_merchant.clear();
        }
        cached.by_merchant.insert(merchant, (declarations, at));
    }

    fn forget(&self, merchant: Uuid) {
        let mut cached = self.lock();
        cached.changes += 1;
        cached.by_merchant.remove(&merchant);
    }
}

impl super::Db {
    /// Says a merchant's declarations changed (called once the change is
    /// committed): this node's next read of them asks the database.
    pub fn declarations_changed(&self, tenant: super::Tenant) {
        self.declarations.forget(tenant.id());
    }
}

impl Scoped<'_> {
    /// Every declaration of the merchant, retired ones included, by name; as read
    /// at most [`DECLARATIONS_TTL`] ago.
    pub async fn declarations(&self) -> Result<Arc<[Declaration]>, sqlx::Error> {
        let merchant = self.merchant();
        let read_after = match self.db.declarations.get(merchant) {
            Ok(cached) => return Ok(cached),
            Err(changes) => changes,
        };
        let at = Instant::now();
        let fresh: Arc<[Declaration]> = self.read_declarations().await?.into();
        self.db.declarations.put(merchant, read_after, fresh.clone(), at);
        Ok(fresh)
    }

    async fn read_declarations(&self) -> Result<Vec<Declaration>, sqlx::Error> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {DECL_COLUMNS} FROM custom_parameters WHERE merchant_id = $1 ORDER BY name")
        });
        let merchant = self.merchant();
        let rows = match self.inline() {
            Some(r) => r.read(move |c| sqlite_rows(&mut *c.prepare_cached(&SQL)?, [merchant])).await?,
            None => {
                on_conn!(self.conn(), p => sqlx::query_as::<_, DeclRow>(&SQL).bind(self.merchant()).fetch_all(p).await)?
            }
        };
        Ok(rows.into_iter().map(Declaration::from).collect())
    }

    /// The custom values of these customers, as responses show them (secrets obfuscated).
    pub async fn custom_values(&self, customers: &[Uuid]) -> Result<CustomValues, sqlx::Error> {
        if customers.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(r) = self.inline() {
            let (merchant, customers) = (self.merchant(), customers.to_vec());
            return r.read(move |c| inline_custom_values(c, merchant, &customers)).await;
        }
        let sql = custom_values_sql(customers.len());
        let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = on_conn!(self.conn(), p => {
            let mut q = sqlx::query_as(&sql).bind(self.merchant());
            for c in customers { q = q.bind(*c); }
            q.fetch_all(p).await
        })?;
        Ok(shown_values(rows))
    }
}

/// Custom values as responses show them, by customer and name.
pub type CustomValues = HashMap<Uuid, BTreeMap<String, Value>>;

fn custom_values_sql(n: usize) -> String {
    format!(
        "SELECT customer_id, name, value, hint FROM customer_custom_values WHERE merchant_id = $1 AND customer_id IN ({})",
        placeholders(2, n)
    )
}

pub(super) fn inline_custom_values(
    c: &rusqlite::Connection,
    merchant: Uuid,
    customers: &[Uuid],
) -> rusqlite::Result<CustomValues> {
    let mut st = c.prepare_cached(&custom_values_sql(customers.len()))?;
    let args: Vec<Uuid> = std::iter::once(merchant).chain(customers.iter().copied()).collect();
    super::inline::bind_numbered(&mut st, &args)?;
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
    }
    Ok(shown_values(out))
}

/// A secret value shows its hint; a value that is not JSON (never written so) shows null.
pub(super) fn shown_values(rows: Vec<(Uuid, String, Option<String>, Option<String>)>) -> CustomValues {
    let mut out = CustomValues::new();
    for (customer, name, value, hint) in rows {
        let shown = match (value, hint) {
            (Some(v), _) => serde_json::from_str(&v).unwrap_or(Value::Null),
            (None, Some(h)) => Value::String(h),
            (None, None) => Value::Null,
        };
        out.entry(customer).or_default().insert(name, shown);
    }
    out
}

impl WriteTx {
    /// Declares or changes a parameter. Its type and secrecy are fixed once declared
    /// (stored values were checked and sealed by them); `required` and the
    /// description may change, and declaring a retired name again revives it.
    pub async fn declare(&mut self, name: &str, input: &DeclarationInput) -> Result<Declaration, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let sql = format!("SELECT {DECL_COLUMNS} FROM custom_parameters WHERE merchant_id = $1 AND name = $2");
        let existing = self.fetch_optional::<DeclRow>(&sql, &[&merchant, &name]).await?;
        let id = match existing.map(Declaration::from) {
            Some(d) => {
                if d.kind != input.kind || d.secret != input.secret {
                    return Err(StoreError::Conflict {
                        code: "custom_parameter_conflict",
                        message: "A custom parameter keeps its type and secrecy; declare a new name instead.",
                    });
                }
                self.exec(
                    "UPDATE custom_parameters SET required = $1, description = $2, modified_at = $3, retired_at = NULL \
                     WHERE merchant_id = $4 AND name = $5",
                    &[&input.required, &input.description.as_deref(), &now, &merchant, &name],
                )
                .await?;
                d.id
            }
            None => {
                self.within_limit(
                    "SELECT COUNT(*) FROM custom_parameters WHERE merchant_id = $1",
                    &[&merchant],
                    super::limits::CUSTOM_PARAMETERS_PER_MERCHANT,
                    "too_many_custom_parameters",
                    "A merchant declares at most 200 custom parameters, retired ones included.",
                )
                .await?;
                let id = Uuid::now_v7();
                self.exec("INSERT INTO custom_parameters (merchant_id, name, id, type, required, secret, description, created_at, modified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)", &[&merchant, &name, &id, &input.kind.as_str(), &input.required, &input.secret, &input.description.as_deref(), &now]).await?;
                id
            }
        };
        self.event(EventType::CustomParameterDeclared, id).await?;
        Ok(Declaration {
            id,
            name: name.to_owned(),
            kind: input.kind,
            required: input.required,
            secret: input.secret,
            description: input.description.clone(),
            retired: false,
        })
    }

    /// Retires a parameter: no longer accepted, stored values stay readable.
    pub async fn retire(&mut self, name: &str) -> Result<Uuid, StoreError> {
        let (merchant, now) = (self.merchant(), self.now);
        let row: Option<(Uuid,)> = self.fetch_optional("UPDATE custom_parameters SET retired_at = $1, modified_at = $1 WHERE merchant_id = $2 AND name = $3 AND retired_at IS NULL RETURNING id", &[&now, &merchant, &name]).await?;
        let (id,) = row.ok_or(StoreError::NotFound("Custom parameter"))?;
        self.event(EventType::CustomParameterRetired, id).await?;
        Ok(id)
    }

    /// Replaces the customer's values of the active parameters `active`; values
    /// of retired parameters are left as they are.
    pub async fn write_custom_values(
        &mut self,
        vault: &Vault,
        customer: Uuid,
        active: &[String],
        body: &BodyValues,
    ) -> Result<(), StoreError> {
        let merchant = self.merchant();
        self.check_unchanged(customer, &body.unchanged).await?;
        // Secrets left as they are keep their rows; every other active name is replaced.
        let replaced: Vec<&String> = active.iter().filter(|n| !body.unchanged.iter().any(|u| &u.name == *n)).collect();
        if !replaced.is_empty() {
            let sql = format!(
                "DELETE FROM customer_custom_values WHERE merchant_id = $1 AND customer_id = $2 AND name IN ({})",
                placeholders(3, replaced.len())
            );
            let mut args: Vec<&dyn Param<'_>> = vec![&merchant, &customer];
            args.extend(replaced.iter().map(|n| *n as &dyn Param<'_>));
            self.exec(&sql, &args).await?;
        }
        let values = &body.set;
        let version = if values.iter().any(|v| v.secret) { Some(self.active_key_version(vault).await?) } else { None };
        for v in values {
            let (value, key, sealed, hint) = if v.secret {
                let aad = custom_aad(merchant, customer, &v.name);
                let clear = serde_json::to_vec(&v.json).unwrap_or_default();
                let sealed = vault.seal(version.unwrap_or(1), &aad, &clear)?;
                (None, None, Some(sealed), Some(v.hint()))
            } else {
                (Some(v.json.to_string()), Some(v.key.as_str()), None, None)
            };
            let kv = v.secret.then(|| i64::from(version.unwrap_or(1)));
            self.later("INSERT INTO customer_custom_values (merchant_id, customer_id, name, value, value_key, secret, hint, key_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", &[&merchant, &customer, &v.name.as_str(), &value, &key, &sealed, &hint, &kv], StoreError::Db).await?;
        }
        Ok(())
    }

    /// The customer's custom values as responses show them (secrets masked), read
    /// in this transaction.
    pub async fn shown_custom_values(&mut self, customer: Uuid) -> Result<BTreeMap<String, Value>, StoreError> {
        let merchant = self.merchant();
        let sql = custom_values_sql(1);
        let args: [&dyn Param<'_>; 2] = [&merchant, &customer];
        let rows = self.fetch_all(&sql, &args).await?;
        Ok(shown_values(rows).remove(&customer).unwrap_or_default())
    }

    /// Secrets a body leaves as they are must be stored: a masked form sent back
    /// must be this customer's own mask (a value equal to a mask is never stored),
    /// and a required one must exist.
    async fn check_unchanged(&mut self, customer: Uuid, unchanged: &[Unchanged]) -> Result<(), StoreError> {
        let checked: Vec<&Unchanged> = unchanged.iter().filter(|u| u.is_checked()).collect();
        if checked.is_empty() {
            return Ok(());
        }
        let merchant = self.merchant();
        let sql = format!(
            "SELECT name, hint FROM customer_custom_values WHERE merchant_id = $1 AND customer_id = $2 AND name IN ({})",
            placeholders(3, checked.len())
        );
        let mut args: Vec<&dyn Param<'_>> = vec![&merchant, &customer];
        args.extend(checked.iter().map(|u| &u.name as &dyn Param<'_>));
        let stored: Vec<(String, Option<String>)> = self.fetch_all(&sql, &args).await?;
        for u in checked {
            let hint = stored.iter().find(|(n, _)| *n == u.name).map(|(_, h)| h.as_deref());
            match (&u.shown, hint) {
                (Some(shown), Some(Some(h))) if shown == h => {}
                (Some(_), _) => {
                    return Err(StoreError::Invalid {
                        path: u.name.clone(),
                        message: format!(
                            "'{}' looks like a masked secret but is not this customer's: send the value itself, or null to clear it.",
                            u.name
                        ),
                    });
                }
                (None, None) => {
                    return Err(StoreError::Invalid {
                        path: u.name.clone(),
                        message: format!("'{}' is required.", u.name),
                    });
                }
                (None, Some(_)) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn declarations_are_kept_for_their_time_and_a_read_overtaken_by_a_change_is_not_kept() {
        let (cache, merchant) = (DeclarationCache::default(), Uuid::now_v7());
        let none: Arc<[Declaration]> = Arc::from([]);
        let Err(read_after) = cache.get(merchant) else { panic!("nothing read yet") };
        cache.put(merchant, read_after, none.clone(), Instant::now());
        assert!(cache.get(merchant).is_ok(), "kept");
        // Read, then changed before the read is stored: the read is dropped.
        cache.forget(merchant);
        let Err(read_after) = cache.get(merchant) else { panic!("forgotten") };
        cache.forget(merchant);
        cache.put(merchant, read_after, none.clone(), Instant::now());
        assert!(cache.get(merchant).is_err(), "a read older than the change is not kept");
        // A read as old as the time allows is read again.
        let Err(read_after) = cache.get(merchant) else { unreachable!() };
        cache.put(merchant, read_after, none, Instant::now() - DECLARATIONS_TTL);
        assert!(cache.get(merchant).is_err(), "expired");
    }
}
