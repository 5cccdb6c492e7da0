//! The event feed: the merchant's events, the newest first, by type.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use uuid::Uuid;

use super::{PortalUser, error_page, layout, page};
use crate::AppState;
use crate::domain::event::EventType;
use crate::store::events::EventFilter;

/// Events a page shows.
const PAGE: u32 = 50;

/// `GET /portal/events?type=&before=`: 50 events, the newest first; `before`
/// (the last one a page showed) continues with older ones.
pub(super) async fn list(State(state): State<AppState>, user: PortalUser, RawQuery(raw): RawQuery) -> Response {
    let (mut kind, mut before) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "type" if !v.is_empty() => match EventType::parse(&v) {
                Some(t) => kind = Some(t),
                None => return error_page(StatusCode::BAD_REQUEST, Some(&user), "No event has that type."),
            },
            "before" if !v.is_empty() => match Uuid::parse_str(&v) {
                Ok(id) => before = Some(id),
                Err(_) => return error_page(StatusCode::BAD_REQUEST, Some(&user), "That is not an event's id."),
            },
            _ => {}
        }
    }
    let db = state.db().scoped(user.tenant());
    let filter = EventFilter { kind, entity_id: None, after: before, limit: PAGE, newest_first: true };
    let (events, users) =
        match tokio::try_join!(db.list_events(&filter), state.db().portal_users(user.session.merchant_id)) {
            Ok(found) => found,
            Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&user), "The events could not be read."),
        };
    let emails: HashMap<Uuid, String> = users.into_iter().map(|u| (u.id, u.email)).collect();
    let older = (events.len() == PAGE as usize).then(|| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(t) = kind {
            q.append_pair("type", t.as_str());
        }
        q.append_pair("before", &events[events.len() - 1].id.to_string());
        format!("/portal/events?{}", q.finish())
    });
    let body = html! {
        form.search method="get" action="/portal/events" {
            select name="type" {
                option value="" { "Every type" }
                @for t in EventType::ALL { option selected[kind == Some(*t)] { (t.as_str()) } }
            }
            button type="submit" { "Show" }
        }
        table {
            thead { tr { th { "When" } th { "Type" } th { "Entity" } th { "By" } th { "Correlation id" } } }
            tbody {
                @for e in &events {
                    tr {
                        td { (crate::routes::timestamp(e.created_at)) }
                        td { (e.kind) }
                        td {
                            @if e.kind.starts_with("customer.") && e.kind != "customer.deleted" {
                                a href=(format!("/portal/customers/{}", e.entity_id)) { (e.entity_id) }
                            } @else { (e.entity_id) }
                        }
                        td {
                            @if let Some(u) = e.user_id { (emails.get(&u).map_or_else(|| u.to_string(), Clone::clone)) }
                            @else if let Some(k) = e.api_key_id { "key " (k) }
                            @else { "the service" }
                        }
                        td { (e.correlation_id) }
                    }
                }
            }
        }
        nav.pages { @if let Some(href) = older { a href=(href) { "Older" } } }
    };
    page(StatusCode::OK, layout("Events", Some(&user), body))
}
