//! `POST /pay-api/v1/identity-documents/decode`: the text of a scanned PDF417
//! driver's licence or ID card (AAMVA) into seed 004's fields.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{JsonReply, WriteErrors};
use crate::AppState;
use crate::auth::{Authed, CustomersRead};
use crate::domain::aamva::{Decoded, decode};
use crate::domain::{Obj, Problems};
use crate::error::ApiResult;
use crate::http::extract::JsonBody;
use crate::http::idempotency::SensitiveReply;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(decode_document))
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
pub struct DecodeRequest {
    /// The barcode's text, as the scanner reads it (starting with `@`).
    #[schema(write_only, example = "@\n\u{1e}\rANSI 636014080001DL0031...")]
    code: String,
}

/// The licence's fields, plus `country` and `sex`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecodedView {
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub dob: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    /// State or province code.
    pub province: Option<String>,
    /// `12345`, `12345-6789` or `A1A 1A1`.
    pub postal_code: Option<String>,
    /// `US` or `CA`.
    pub country: Option<String>,
    /// `M`, `F` or `X`; null when the card says otherwise.
    pub sex: Option<String>,
    /// `USDL`, `CADL` (licences), `USID`, `CAID` (ID cards).
    pub govid_type: String,
    pub govid_issued_by: Option<String>,
    pub govid_number: String,
    /// `YYYY-MM-DD`.
    pub govid_expiry: Option<String>,
}

impl From<Decoded> for DecodedView {
    fn from(d: Decoded) -> Self {
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        DecodedView {
            first_name: d.first_name,
            middle_name: d.middle_name,
            last_name: d.last_name,
            dob: d.dob.map(day),
            address1: d.address1,
            address2: d.address2,
            city: d.city,
            province: d.province,
            postal_code: d.postal_code,
            country: d.country,
            sex: d.sex,
            govid_type: d.govid_type,
            govid_issued_by: d.govid_issued_by,
            govid_number: d.govid_number,
            govid_expiry: d.govid_expiry.map(day),
        }
    }
}

/// Decode a driver's licence or ID card
///
/// AAMVA DL/ID card design standard, versions 1 to 10: US dates `MMDDCCYY` and
/// Canadian `CCYYMMDD` (chosen by the issuer's country), old and new name
/// elements, jurisdiction subfiles ignored. A malformed code gets a 400 whose
/// `errors.code` says what is wrong. Nothing is stored: the reply is never kept
/// for `Idempotency-Key` replay.
#[utoipa::path(
    post, path = "/identity-documents/decode", tag = "point of sale",
    request_body = DecodeRequest,
    responses((status = 200, description = "The card's fields", body = DecodedView), WriteErrors),
    security(("bearer" = ["customers:read"]))
)]
async fn decode_document(_auth: Authed<CustomersRead>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut p = Problems::new();
    let code = Obj::root(&body, &mut p).and_then(|mut o| {
        let code = o.required_string("code", &mut p);
        o.finish(&mut p);
        code
    });
    let code = p.check(code)?.unwrap_or_default();
    let decoded = decode(code).map_err(|e| {
        let mut p = Problems::new();
        p.push("code", format!("The code cannot be decoded: {}.", e.0));
        p
    })?;
    let mut res = JsonReply::new(StatusCode::OK, &DecodedView::from(decoded)).into_response();
    // Personal data: never stored for replay.
    res.extensions_mut().insert(SensitiveReply);
    Ok(res)
}
