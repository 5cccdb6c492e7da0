//! `/pay-api/v1/custom-parameters`: the merchant's own customer fields (SPEC section 4).

use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{JsonReply, ReadErrors, WriteErrors};
use crate::AppState;
use crate::auth::{Authed, CustomersRead, CustomersWrite};
use crate::domain::Problems;
use crate::domain::custom::{Declaration, DeclarationInput, check_name};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, path_param};
use crate::store::StoreError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_parameters)).routes(routes!(declare_parameter, retire_parameter))
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"type": "string", "required": false, "secret": false, "description": "The customer's loyalty card number"}))]
pub struct DeclareRequest {
    /// Fixed once declared; a `date` is `YYYY-MM-DD`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::domain::custom::ParamType)]
    kind: String,
    /// Creates and updates made from now on must send it. Default false.
    required: Option<bool>,
    /// Encrypted at rest and obfuscated in every response. Fixed once declared. Default false.
    secret: Option<bool>,
    /// Up to 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterView {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
    /// Retired parameters are no longer accepted; stored values stay readable.
    pub retired: bool,
}

impl From<&Declaration> for ParameterView {
    fn from(d: &Declaration) -> Self {
        ParameterView {
            id: d.id,
            name: d.name.clone(),
            kind: d.kind.as_str(),
            required: d.required,
            secret: d.secret,
            description: d.description.clone(),
            retired: d.retired,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParameterList {
    pub items: Vec<ParameterView>,
    pub total: i64,
}

fn name_param(params: &RawPathParams) -> ApiResult<String> {
    let name = path_param(params, "name").to_owned();
    check_name(&name).map_err(|why| {
        let mut p = Problems::new();
        p.push("name", why);
        ApiError::validation(p)
    })?;
    Ok(name)
}

/// List custom parameters
///
/// Every declaration of the merchant, retired ones included.
#[utoipa::path(
    get, path = "/custom-parameters", tag = "custom parameters",
    responses((status = 200, description = "The declarations", body = ParameterList), ReadErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn list_parameters(State(state): State<AppState>, auth: Authed<CustomersRead>) -> ApiResult<JsonReply> {
    let items: Vec<ParameterView> =
        state.db().scoped(auth.tenant()).declarations().await?.iter().map(ParameterView::from).collect();
    Ok(JsonReply::new(StatusCode::OK, &ParameterList { total: items.len() as i64, items }))
}

/// Declare or change a custom parameter
///
/// Names: a letter, then letters, digits or `_`, at most 64 characters, and not a
/// field of the customer (`email`, `status`, ... in any case). Once declared, the
/// parameter is accepted and returned at the top level of customers, checked
/// against its type. `type` and `secret` cannot change later (409
/// `custom_parameter_conflict`); `required` and `description` can. Declaring a
/// retired name with the same type and secrecy revives it.
#[utoipa::path(
    put, path = "/custom-parameters/{name}", tag = "custom parameters",
    params(("name" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$")),
    request_body = DeclareRequest,
    responses((status = 200, description = "The declaration", body = ParameterView), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn declare_parameter(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let name = name_param(&params)?;
    let input = DeclarationInput::parse(&body)?;
    let decl = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let d = tx.declare(&name, &input).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(d)
        })
        .await?;
    state.db().declarations_changed(auth.tenant());
    Ok(JsonReply::new(StatusCode::OK, &ParameterView::from(&decl)))
}

/// Retire a custom parameter
///
/// From now on the name is an unknown field on creates and updates; values
/// already stored stay readable on customers.
#[utoipa::path(
    delete, path = "/custom-parameters/{name}", tag = "custom parameters",
    params(("name" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$")),
    responses((status = 200, description = "Retired", body = super::Deleted), WriteErrors),
    security(("bearer" = ["customers:write"]))
)]
async fn retire_parameter(
    State(state): State<AppState>,
    auth: Authed<CustomersWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let name = name_param(&params)?;
    let id = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let id = tx.retire(&name).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(id)
        })
        .await?;
    state.db().declarations_changed(auth.tenant());
    Ok(JsonReply::new(StatusCode::OK, &super::Deleted { id, deleted: true }))
}
