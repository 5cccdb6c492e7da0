//! The audit/event feed: one row per change, ids only, in commit order per node.

use crate::domain::event::EventType;
use uuid::Uuid;

use super::{Scoped, on_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    pub merchant_id: Uuid,
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub entity_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub correlation_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<EventType>,
    pub entity_id: Option<Uuid>,
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl Scoped<'_> {
    /// Events in id order (UUIDv7: creation order), after the cursor.
    pub async fn list_events(&self, f: &EventFilter) -> Result<Vec<EventRecord>, sqlx::Error> {
        let mut sql = String::from(
            "SELECT merchant_id, id, type, entity_id, api_key_id, correlation_id, created_at FROM events WHERE merchant_id = $1",
        );
        let mut n = 1;
        let mut next = |col: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&format!(" AND {col} ${n}"));
        };
        if f.kind.is_some() {
            next("type =", &mut sql);
        }
        if f.entity_id.is_some() {
            next("entity_id =", &mut sql);
        }
        if f.after.is_some() {
            next("id >", &mut sql);
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", f.limit));
        on_conn!(self.conn(), p => {
            let mut q = sqlx::query_as::<_, EventRecord>(&sql).bind(self.merchant());
            if let Some(k) = &f.kind { q = q.bind(k.as_str()); }
            if let Some(e) = f.entity_id { q = q.bind(e); }
            if let Some(a) = f.after { q = q.bind(a); }
            q.fetch_all(p).await
        })
    }
}
