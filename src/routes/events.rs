//! `GET /pay-api/v1/events`: the merchant's change feed, oldest first, with a cursor.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{JsonReply, ReadErrors, timestamp};
use crate::AppState;
use crate::auth::{Authed, CustomersRead};
use crate::domain::Problems;
use crate::domain::event::EventType;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryReader;
use crate::store::events::{EventFilter, EventRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// A change: ids only, never personal or card data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: Uuid,
    pub merchant_id: Uuid,
    /// `customer.created`, `customer.updated`, `customer.deleted`, `customer.status_changed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub entity_id: Uuid,
    /// The API key that made the change.
    pub api_key_id: Option<Uuid>,
    /// The portal user who made the change.
    pub user_id: Option<Uuid>,
    pub correlation_id: String,
    pub created_on: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `after` to read on; null when this page reached the end.
    pub next_cursor: Option<Uuid>,
}

impl From<EventRecord> for EventView {
    fn from(r: EventRecord) -> Self {
        EventView {
            id: r.id,
            merchant_id: r.merchant_id,
            kind: r.kind,
            entity_id: r.entity_id,
            api_key_id: r.api_key_id,
            user_id: r.user_id,
            correlation_id: r.correlation_id,
            created_on: timestamp(r.created_at),
        }
    }
}

#[allow(dead_code)]
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Only events about this object.
    entity_id: Option<Uuid>,
    /// Events after this event (the previous page's `nextCursor`, or any item's id);
    /// 404 when it is no event of the merchant.
    after: Option<Uuid>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

fn parse(raw: Option<&str>) -> Result<EventFilter, Problems> {
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw, &mut p);
    let kind = q.one("type", &mut p).and_then(|s| {
        let kind = EventType::parse(s);
        if kind.is_none() {
            p.push("type", "'type' must be an event type, such as customer.created (see the API reference).");
        }
        kind
    });
    let mut uuid = |key: &'static str, p: &mut Problems| {
        let s = q.one(key, p)?;
        let u = Uuid::parse_str(s).ok();
        if u.is_none() {
            p.push(key, format!("'{key}' must be a UUID."));
        }
        u
    };
    let entity_id = uuid("entityId", &mut p);
    let after = uuid("after", &mut p);
    let limit = q.int("limit", 1, 500, &mut p).unwrap_or(100) as u32;
    q.finish(&mut p);
    p.check(EventFilter { kind, entity_id, after, limit, newest_first: false })
}

/// List events
///
/// In commit order. Each change writes its event in the same transaction, so the
/// feed never misses or invents a change; and no event can commit behind a page
/// already returned, so a reader following `nextCursor` sees every event once,
/// however many nodes write.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(EventParams),
    responses((status = 200, description = "A page of events", body = EventPage), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_events(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let filter = parse(raw.as_deref())?;
    let db = state.db().scoped(auth.tenant());
    let items = db.list_events(&filter).await?;
    // An empty page after a cursor is "nothing new" only when the cursor is an
    // event: anything else would leave its reader waiting for ever.
    if let Some(after) = filter.after
        && items.is_empty()
        && !db.has_event(after).await?
    {
        return Err(ApiError::field(
            StatusCode::NOT_FOUND,
            "not_found",
            "after",
            "'after' must be an event id this feed handed out (an item's id or nextCursor).",
        ));
    }
    let next_cursor = if items.len() == filter.limit as usize { items.last().map(|e| e.id) } else { None };
    let page = EventPage { items: items.into_iter().map(EventView::from).collect(), next_cursor };
    Ok(JsonReply::new(StatusCode::OK, &page))
}
