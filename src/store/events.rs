//! The audit/event feed: one row per change, ids only, in commit order.

use crate::domain::event::EventType;
use uuid::Uuid;

use super::query::record;
use super::{Scoped, on_conn};

record! {
    #[derive(Debug, Clone)]
    pub struct EventRecord {
        pub merchant_id: Uuid,
        pub id: Uuid,
        pub kind: String as "type",
        pub entity_id: Uuid,
        pub api_key_id: Option<Uuid>,
        pub user_id: Option<Uuid>,
        pub correlation_id: String,
        pub created_at: i64,
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<EventType>,
    pub entity_id: Option<Uuid>,
    pub after: Option<Uuid>,
    pub limit: u32,
    /// Newest first: `after` then continues with older events.
    pub newest_first: bool,
}

impl Scoped<'_> {
    /// Events in commit order (`(feed_pos, id)`, migration 15), after the
    /// cursor: the event a previous page ended with. No event can commit behind a
    /// page once it is returned (`Backend::feed_horizon`), so a reader following
    /// the cursor sees every event, once, whatever the number of nodes.
    pub async fn list_events(&self, f: &EventFilter) -> Result<Vec<EventRecord>, sqlx::Error> {
        let mut sql = String::from(
            "SELECT merchant_id, id, type, entity_id, api_key_id, user_id, correlation_id, created_at FROM events WHERE merchant_id = $1",
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
        let (beyond, order) = if f.newest_first { ("<", "feed_pos DESC, id DESC") } else { (">", "feed_pos, id") };
        if f.after.is_some() {
            // A cursor that names no event of the merchant continues from nothing.
            next(
                &format!(
                    "(feed_pos, id) {beyond} (SELECT c.feed_pos, c.id FROM events c WHERE c.merchant_id = $1 AND c.id ="
                ),
                &mut sql,
            );
            sql.push(')');
        }
        sql.push_str(self.db.backend().feed_horizon());
        sql.push_str(&format!(" ORDER BY {order} LIMIT {}", f.limit));
        on_conn!(self.conn(), p => {
            let mut q = sqlx::query_as::<_, EventRecord>(&sql).bind(self.merchant());
            if let Some(k) = &f.kind { q = q.bind(k.as_str()); }
            if let Some(e) = f.entity_id { q = q.bind(e); }
            if let Some(a) = f.after { q = q.bind(a); }
            q.fetch_all(p).await
        })
    }

    /// Whether `id` is one of the merchant's events (a cursor a page handed out).
    pub async fn has_event(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        let sql = "SELECT 1 FROM events WHERE merchant_id = $1 AND id = $2";
        on_conn!(self.conn(), p => {
            sqlx::query(sql).bind(self.merchant()).bind(id).fetch_optional(p).await.map(|r| r.is_some())
        })
    }
}
