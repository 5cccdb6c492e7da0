//! Point-of-sale credit (SPEC section 5, seed 004): financing plans, opening,
//! finding and closing credit accounts, and instalment quotes.

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::payment_methods::Revealed;
use super::{JsonReply, ReadErrors, WriteErrors, commit_reply};
use crate::AppState;
use crate::auth::{Authed, CreditWrite, CustomersRead, PaymentMethodsReveal};
use crate::crypto::{AnswerCheck, slow_work};
use crate::domain::credit::{
    AccountInput, PlanInput, mask_email, mask_phone, monthly_payment, normalize_answer, required_amount,
};
use crate::domain::customer::parse_date;
use crate::domain::money::Money;
use crate::domain::{Obj, Problems};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, QueryReader, path_param, path_uuid};
use crate::http::idempotency::SensitiveReply;
use crate::store::StoreError;
use crate::store::credit::{AccountKey, AccountRecord, PlanRecord};
use crate::store::verification::{AnswerVerdict, Format, Outcome, VerifyPolicy, VerifyRequest};
use axum::response::{IntoResponse, Response};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans))
        .routes(routes!(get_plan, put_plan, delete_plan))
        .routes(routes!(open_account))
        .routes(routes!(search_accounts))
        .routes(routes!(lookup_account))
        .routes(routes!(close_account))
        .routes(routes!(calculate_interest))
        .routes(routes!(reveal_vcc))
        .routes(routes!(verify))
        .routes(routes!(confirm))
}

// ---- financing plans ----

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"term": 12, "adminFee": 29.99}))]
pub struct TermRequest {
    /// Months.
    #[schema(minimum = 1, maximum = 120, example = 12)]
    term: u32,
    /// Financed with the purchase; not charged to customers in Quebec. At most 2 decimals; none when 0 or left out.
    #[schema(minimum = 0, maximum = 999999999999.99, multiple_of = 0.01, example = 29.99)]
    admin_fee: Option<f64>,
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"planName": "EMP - Regular Interest", "offerCategory": "equal_billing", "apr": 0.0999, "terms": [{"term": 12, "adminFee": 29.99}, {"term": 24}]}))]
pub struct PlanRequest {
    #[schema(min_length = 1, max_length = 100, example = "EMP - Regular Interest")]
    plan_name: String,
    #[schema(min_length = 1, max_length = 50, example = "equal_billing")]
    offer_category: String,
    /// Annual rate, `0.0999` for 9.99 %: from 0 to below 1, at most 6 decimals.
    #[schema(minimum = 0, exclusive_maximum = 1, multiple_of = 0.000001, example = 0.0999)]
    apr: f64,
    /// Each a different number of months.
    #[schema(min_items = 1, max_items = 24)]
    terms: Vec<TermRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TermView {
    pub term: u32,
    pub admin_fee: Money,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub plan_id: i64,
    pub plan_name: String,
    pub offer_category: String,
    pub apr: f64,
    pub terms: Vec<TermView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub items: Vec<PlanView>,
    pub total: i64,
}

fn rate(s: &str) -> f64 {
    s.parse::<Decimal>().ok().and_then(|d| d.to_f64()).unwrap_or(0.0)
}

impl From<PlanRecord> for PlanView {
    fn from(p: PlanRecord) -> Self {
        PlanView {
            plan_id: p.plan_id,
            terms: p.terms().into_iter().map(|t| TermView { term: t.months, admin_fee: Money(t.admin_fee) }).collect(),
            plan_name: p.name,
            offer_category: p.offer_category,
            apr: rate(&p.apr),
        }
    }
}

fn plan_id(params: &RawPathParams) -> ApiResult<i64> {
    let raw = path_param(params, "planId");
    raw.parse::<i64>().ok().filter(|n| (1..=999).contains(n)).ok_or_else(|| {
        let mut p = Problems::new();
        p.push("planId", "'planId' must be a number from 1 to 999.");
        ApiError::validation(p)
    })
}

/// List financing plans
#[utoipa::path(get, path = "/financing-plans", tag = "point of sale",
    responses((status = 200, description = "The merchant's plans", body = PlanList), ReadErrors),
    security(("bearer" = ["customers:read"])))]
async fn list_plans(State(state): State<AppState>, auth: Authed<CustomersRead>) -> ApiResult<JsonReply> {
    let items: Vec<PlanView> =
        state.db().scoped(auth.tenant()).plans().await?.into_iter().map(PlanView::from).collect();
    Ok(JsonReply::new(StatusCode::OK, &PlanList { total: items.len() as i64, items }))
}

/// Get a financing plan
#[utoipa::path(get, path = "/financing-plans/{planId}", tag = "point of sale", params(("planId" = i64, Path, minimum = 1, maximum = 999)),
    responses((status = 200, description = "The plan", body = PlanView), ReadErrors),
    security(("bearer" = ["customers:read"])))]
async fn get_plan(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let id = plan_id(&params)?;
    let plan = state.db().scoped(auth.tenant()).plan(id).await?.ok_or_else(|| ApiError::not_found("Financing plan"))?;
    Ok(JsonReply::new(StatusCode::OK, &PlanView::from(plan)))
}

/// Create or replace a financing plan
///
/// Terms of 1–120 months, each with an admin fee that is financed with the purchase.
#[utoipa::path(put, path = "/financing-plans/{planId}", tag = "point of sale", params(("planId" = i64, Path, minimum = 1, maximum = 999)),
    request_body = PlanRequest,
    responses((status = 200, description = "The plan", body = PlanView), WriteErrors),
    security(("bearer" = ["credit:write"])))]
async fn put_plan(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let id = plan_id(&params)?;
    let plan = PlanInput::parse(&body)?;
    let rec = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let r = tx.put_plan(id, &plan).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(r)
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &PlanView::from(rec)))
}

/// Delete a financing plan
#[utoipa::path(delete, path = "/financing-plans/{planId}", tag = "point of sale", params(("planId" = i64, Path, minimum = 1, maximum = 999)),
    responses((status = 200, description = "Deleted", body = PlanDeleted), WriteErrors),
    security(("bearer" = ["credit:write"])))]
async fn delete_plan(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let id = plan_id(&params)?;
    state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.delete_plan(id).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(JsonReply::new(StatusCode::OK, &PlanDeleted { plan_id: id, deleted: true }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanDeleted {
    pub plan_id: i64,
    pub deleted: bool,
}

// ---- accounts ----

/// A security question's text (up to 200 characters): one text, or the same
/// question by language tag (en, fr, en-CA, fr-CA).
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum QuestionTextRequest {
    One(String),
    ByLanguage(std::collections::BTreeMap<String, String>),
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": 1, "text": {"en-CA": "What was the name of your first pet?", "fr-CA": "Quel était le nom de votre premier animal?"}, "answer": "Rex"}))]
pub struct SecurityQuestionRequest {
    /// Unique within the account.
    #[schema(minimum = 1, maximum = 99999, example = 1)]
    id: u32,
    /// The question; or the same question in several languages, by language tag
    /// (`{"en-CA": "...", "fr-CA": "..."}`: en, fr, en-CA, fr-CA), for lookups to
    /// show in the `lang` they ask for.
    #[schema(value_type = QuestionTextRequest, example = "What was the name of your first pet?")]
    text: String,
    /// Stored as an argon2 hash; compared without regard to case or spacing.
    #[schema(write_only, min_length = 1, max_length = 100, example = "Rex")]
    answer: String,
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"accountType": "consumer", "creditLimit": 5000, "accountInterestRate": 0.2999, "riskRating": "L", "preferredLanguage": "en-CA", "tosAgreement": true, "paymentProtection": false, "securityQuestions": [{"id": 1, "text": "What was the name of your first pet?", "answer": "Rex"}]}))]
pub struct OpenAccountRequest {
    #[schema(value_type = crate::domain::credit::AccountType)]
    account_type: String,
    /// More than 0, at most 2 decimals.
    #[schema(exclusive_minimum = 0, maximum = 999999999999.99, multiple_of = 0.01, example = 5000)]
    credit_limit: f64,
    /// Annual rate, `0.3099` for 30.99 %: from 0 to below 1, at most 6 decimals.
    #[schema(minimum = 0, exclusive_maximum = 1, multiple_of = 0.000001, example = 0.3099)]
    account_interest_rate: f64,
    /// One capital letter: `L` low, `M` medium, `H` high.
    #[schema(pattern = "^[A-Z]$", example = "L")]
    risk_rating: String,
    /// The language security questions are shown in when none is asked for.
    #[schema(max_length = 35, example = "en-CA")]
    preferred_language: Option<String>,
    tos_agreement: Option<bool>,
    payment_protection: Option<bool>,
    #[schema(max_items = 5)]
    security_questions: Option<Vec<SecurityQuestionRequest>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenedAccount {
    /// Numeric, 12 digits.
    pub account_number: String,
    /// The last 4 digits of the virtual card issued with the account.
    pub card_ending_in: String,
    /// The virtual card's full number, in this reply only (like an API key): a
    /// replay of the opening under its `Idempotency-Key` leaves it out, and
    /// `POST /credit-accounts/{accountNumber}/reveal` shows it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub vcc_number: Option<Revealed>,
}

/// `POST /credit-accounts/{accountNumber}/reveal`'s reply.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevealedCard {
    pub account_number: String,
    pub vcc_number: Revealed,
}

/// Open a credit account
///
/// Issues a 12-digit account number and a Luhn-valid 16-digit virtual card
/// under the merchant's IIN (default 990000; `clientele merchant configure
/// --vcc-bin`), encrypted like card data. The reply carries the card's full
/// number once (`vccNumber`); afterwards only its last 4 digits are shown, and
/// `POST /credit-accounts/{accountNumber}/reveal` gives it to a key allowed to.
#[utoipa::path(post, path = "/customers/{customerId}/credit-accounts", tag = "point of sale",
    params(("customerId" = Uuid, Path)),
    request_body = OpenAccountRequest,
    responses((status = 200, description = "Opened", body = OpenedAccount), WriteErrors),
    security(("bearer" = ["credit:write"])))]
async fn open_account(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let customer = path_uuid(&params, "customerId")?;
    let input = AccountInput::parse(&body)?;
    let opened = open(&state, auth.actor(), customer, input).await?;
    Ok(JsonReply::new(StatusCode::OK, &opened))
}

/// Opens `customer`'s account in `actor`'s name (the API and the portal): the
/// reply, with the virtual card's full number, which a replay never carries.
pub(crate) async fn open(
    state: &AppState,
    actor: crate::store::Actor,
    customer: Uuid,
    input: AccountInput,
) -> ApiResult<OpenedAccount> {
    let (bin, _) = state.db().merchant_settings(actor.tenant).await?;
    let vault = state.vault();
    // The answers are hashed before the write is queued: argon2 takes tens of
    // milliseconds an answer, which the writer would spend holding every other write.
    let answers: Vec<String> = input.questions.iter().map(|(_, _, answer)| normalize_answer(answer)).collect();
    let hasher = vault.clone();
    let hashes = slow_work(move || answers.iter().map(|a| hasher.hash_answer(a)).collect::<Result<Vec<_>, _>>())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let (mut opened, vcc) = state
        .db()
        .write(actor, move |mut tx| async move {
            let (account_number, vcc) = tx.open_account(&vault, customer, &input, &hashes, &bin).await?;
            // What a replay under the same Idempotency-Key answers: never the full number.
            let card_ending_in = vcc[vcc.len() - 4..].to_owned();
            let opened = OpenedAccount { account_number, card_ending_in, vcc_number: None };
            commit_reply(tx, &opened).await?;
            Ok::<_, StoreError>((opened, vcc))
        })
        .await?;
    opened.vcc_number = Some(Revealed::new(vcc));
    Ok(opened)
}

/// Reveal a credit account's virtual card
///
/// Needs the `payment_methods:reveal` scope. Every call writes a
/// `credit_account.vcc_revealed` event; the reply is never stored for
/// `Idempotency-Key` replay (a retried reveal runs, and is audited, again).
#[utoipa::path(post, path = "/credit-accounts/{accountNumber}/reveal", tag = "point of sale",
    params(("accountNumber" = String, Path, pattern = "^[0-9]{1,14}$")),
    responses((status = 200, description = "The full virtual card number", body = RevealedCard), WriteErrors),
    security(("bearer" = ["payment_methods:reveal"])))]
async fn reveal_vcc(
    State(state): State<AppState>,
    auth: Authed<PaymentMethodsReveal>,
    params: RawPathParams,
) -> ApiResult<Response> {
    let number = account_number(&params)?;
    let vault = state.vault();
    let key = number.clone();
    let vcc = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let vcc = tx.reveal_vcc(&vault, &key).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(vcc)
        })
        .await?;
    let mut res =
        JsonReply::new(StatusCode::OK, &RevealedCard { account_number: number, vcc_number: Revealed::new(vcc) })
            .into_response();
    res.extensions_mut().insert(SensitiveReply);
    Ok(res)
}

/// A search result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub customer_id: Uuid,
    /// `open` or `closed`.
    pub account_status: String,
    pub account_status_reason_code: String,
    pub tos_agreement: bool,
    pub risk_rating: String,
    pub account_number: String,
    pub customer_account_type: String,
    pub credit_limit: Money,
    pub available_credit: Money,
    pub originating_merchant_id: Uuid,
    pub originating_merchant_name: String,
    /// `YYYY-MM-DD`.
    pub creation_date: String,
    pub first_name: String,
    pub last_name: String,
    pub card_ending_in: String,
    pub preferred_language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountSummary>,
    pub total: i64,
}

fn available(a: &AccountRecord) -> Money {
    Money((a.credit_limit - a.outstanding).max(0))
}

fn summary(a: AccountRecord, merchant: Uuid) -> AccountSummary {
    AccountSummary {
        customer_id: a.customer_id,
        available_credit: available(&a),
        account_status: a.status,
        account_status_reason_code: a.status_reason,
        tos_agreement: a.tos_agreement,
        risk_rating: a.risk_rating,
        account_number: a.account_number,
        customer_account_type: a.account_type,
        credit_limit: Money(a.credit_limit),
        originating_merchant_id: merchant,
        originating_merchant_name: a.merchant_name,
        creation_date: super::timestamp(a.created_at)[..10].to_owned(),
        first_name: a.first_name,
        last_name: a.last_name,
        card_ending_in: a.vcc_last4,
        preferred_language: a.preferred_language,
    }
}

/// Seed 004's `lang` query parameter: `en`, `fr`, `en-CA` or `fr-CA`.
fn read_lang(q: &mut QueryReader, p: &mut Problems) -> Option<&'static str> {
    let raw = q.one("lang", p)?;
    let lang = crate::domain::credit::parse_language(raw);
    if lang.is_none() {
        p.push("lang", "'lang' must be en, fr, en-CA or fr-CA.");
    }
    lang
}

/// Search credit accounts by customer
///
/// `firstName`, `lastName` (both case-insensitive) and `dob` are required;
/// `postalCode` narrows (billing address; case, spaces and dashes ignored).
#[utoipa::path(get, path = "/credit-accounts/search", tag = "point of sale",
    params(("firstName" = String, Query, min_length = 1, max_length = 100), ("lastName" = String, Query, min_length = 1, max_length = 100), ("dob" = String, Query, format = Date),
        ("postalCode" = Option<String>, Query), ("lang" = Option<String>, Query, description = "en, fr, en-CA or fr-CA")),
    responses((status = 200, description = "Matching accounts", body = AccountPage), ReadErrors),
    security(("bearer" = ["customers:read"])))]
async fn search_accounts(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw.as_deref(), &mut p);
    let mut required = |key: &'static str, p: &mut Problems| {
        let v = q.text(key, p).map(|s| s.trim().to_lowercase());
        if v.is_none() && !p.iter().any(|x| x.path == key) {
            p.push(key, format!("'{key}' is required."));
        }
        v
    };
    let first = required("firstName", &mut p);
    let last = required("lastName", &mut p);
    let dob = required("dob", &mut p);
    if let Some(d) = &dob
        && parse_date(d).is_none()
    {
        p.push("dob", "'dob' must be a date in the form YYYY-MM-DD.");
    }
    let postal = q.text("postalCode", &mut p).map(crate::domain::address::postal_key);
    read_lang(&mut q, &mut p);
    q.finish(&mut p);
    p.check(())?;
    let (first, last, dob) = (first.unwrap_or_default(), last.unwrap_or_default(), dob.unwrap_or_default());
    let tenant = auth.tenant();
    let rows = state.db().scoped(tenant).search_accounts(&first, &last, &dob, postal.as_deref()).await?;
    let items: Vec<AccountSummary> = rows.into_iter().map(|a| summary(a, tenant.id())).collect();
    Ok(JsonReply::new(StatusCode::OK, &AccountPage { total: items.len() as i64, items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityQuestionView {
    pub id: i64,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferType {
    pub plan_name: String,
    pub plan_id: i64,
    pub offer_category: String,
    pub term_options: Vec<String>,
}

/// What a lookup answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLookup {
    pub available_credit: Money,
    pub account_number: String,
    pub customer_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub security_qid: Vec<SecurityQuestionView>,
    /// Masked: `a***t@example.com`.
    pub email: Option<String>,
    /// Masked: `***-***-2222`.
    pub phone_number: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub province: Option<String>,
    pub payment_protection: bool,
    pub risk_rating: String,
    pub offer_types: Vec<OfferType>,
    pub card_ending_in: String,
    pub preferred_language: Option<String>,
    pub account_type: String,
    pub account_status: String,
}

/// Look up a credit account
///
/// By exactly one of `vccNumber` (the virtual card), `accountNumber` or
/// `customerId` (the customer's open account, else its newest). `lang` picks the
/// language of the security questions' texts, when the account was opened with
/// them in several.
#[utoipa::path(get, path = "/credit-accounts/lookup", tag = "point of sale",
    params(("vccNumber" = Option<String>, Query, pattern = "^[ -]*([0-9][ -]*){12,19}$"), ("accountNumber" = Option<String>, Query, pattern = "^[0-9]{1,14}$"), ("customerId" = Option<Uuid>, Query),
        ("lang" = Option<String>, Query, description = "en, fr, en-CA or fr-CA: the language of the security questions' texts")),
    responses((status = 200, description = "The account", body = AccountLookup), ReadErrors),
    security(("bearer" = ["customers:read"])))]
async fn lookup_account(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonReply> {
    let mut p = Problems::new();
    let mut q = QueryReader::new(raw.as_deref(), &mut p);
    // Exactly one form sent, each checked as sent (an empty value is not a number).
    let given = ["vccNumber", "accountNumber", "customerId"].iter().filter(|k| q.has(k)).count();
    let vcc = q.one("vccNumber", &mut p).and_then(|v| {
        let digits: String = v.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let ok = (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            p.push("vccNumber", "'vccNumber' must be 12 to 19 digits (spaces and dashes allowed).");
        }
        ok.then_some(digits)
    });
    let number = q.one("accountNumber", &mut p).and_then(|n| {
        let ok = is_account_number(n);
        if !ok {
            p.push("accountNumber", "'accountNumber' must be up to 14 digits.");
        }
        ok.then(|| n.to_owned())
    });
    let customer = q.one("customerId", &mut p).and_then(|c| {
        let id = Uuid::parse_str(c).ok();
        if id.is_none() {
            p.push("customerId", "'customerId' must be a UUID.");
        }
        id
    });
    let lang = read_lang(&mut q, &mut p);
    q.finish(&mut p);
    if given != 1 {
        p.push("$", "Give exactly one of vccNumber, accountNumber, customerId.");
    }
    p.check(())?;
    let key = if let Some(digits) = vcc {
        AccountKey::VccFingerprint(state.vault().fingerprint(auth.tenant().id(), "vcc", digits.as_bytes()))
    } else if let Some(n) = number {
        AccountKey::Number(n)
    } else {
        AccountKey::Customer(customer.expect("exactly one form, checked above"))
    };
    let db = state.db().scoped(auth.tenant());
    let a = db.account(&key).await?.ok_or_else(|| ApiError::not_found("Credit account"))?;
    let questions = db.security_questions(&a.account_number).await?;
    let offer_types = db
        .plans()
        .await?
        .into_iter()
        .map(|plan| OfferType {
            term_options: plan.terms().iter().map(|t| t.months.to_string()).collect(),
            plan_name: plan.name,
            plan_id: plan.plan_id,
            offer_category: plan.offer_category,
        })
        .collect();
    let view = AccountLookup {
        available_credit: available(&a),
        account_number: a.account_number,
        customer_id: a.customer_id,
        first_name: a.first_name,
        last_name: a.last_name,
        security_qid: questions
            .into_iter()
            .map(|(id, text)| SecurityQuestionView { id, text: text.in_language(lang).to_owned() })
            .collect(),
        email: a.email.as_deref().map(mask_email),
        phone_number: a.mobile_phone.as_deref().map(mask_phone),
        address1: a.billing_line1,
        address2: a.billing_line2,
        city: a.billing_city,
        postal_code: a.billing_postal_code,
        province: a.billing_state,
        payment_protection: a.payment_protection,
        risk_rating: a.risk_rating,
        offer_types,
        card_ending_in: a.vcc_last4,
        preferred_language: a.preferred_language,
        account_type: a.account_type,
        account_status: a.status,
    };
    Ok(JsonReply::new(StatusCode::OK, &view))
}

/// An account number's form: 1 to 14 digits.
fn is_account_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 14 && s.bytes().all(|b| b.is_ascii_digit())
}

fn account_number(params: &RawPathParams) -> ApiResult<String> {
    let raw = path_param(params, "accountNumber");
    if !is_account_number(raw) {
        let mut p = Problems::new();
        p.push("accountNumber", "'accountNumber' must be up to 14 digits.");
        return Err(ApiError::validation(p));
    }
    Ok(raw.to_owned())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    pub account_number: String,
    pub account_status: &'static str,
}

/// Close a credit account
///
/// Final: a closed account cannot verify, buy or be quoted.
#[utoipa::path(post, path = "/credit-accounts/{accountNumber}/close", tag = "point of sale",
    params(("accountNumber" = String, Path, pattern = "^[0-9]{1,14}$")),
    responses((status = 200, description = "Closed", body = Closed), WriteErrors),
    security(("bearer" = ["credit:write"])))]
async fn close_account(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
) -> ApiResult<JsonReply> {
    let number = account_number(&params)?;
    Ok(state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            tx.close_account(&number).await?;
            commit_reply(tx, &Closed { account_number: number, account_status: "closed" }).await
        })
        .await?)
}

// ---- calculate interest ----

const FEE_MESSAGE: &str = "Although your administrative fee may be represented as a monthly or annual amount, the fee is due in full if the account is paid off early. See terms and conditions for full details.";
const RATE_MESSAGE: &str = "Promotional annual interest rate applies during the promotional period and is included in your estimated monthly payments. Account annual interest rate is charged if the promo is cancelled or expires without full payment and applies when promos are not in effect.";

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"amount": 1200}))]
pub struct InterestRequest {
    /// More than 0, at most 2 decimals.
    #[schema(exclusive_minimum = 0, maximum = 999999999999.99, multiple_of = 0.01, example = 1200)]
    amount: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuoteCustomer {
    /// The account's annual interest rate.
    pub air: f64,
    pub available_credit: Money,
    pub first_name: String,
    pub last_name: String,
    /// `preferred` for low-risk (`L`) accounts, otherwise `standard`.
    pub category_type: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Fee {
    pub description: &'static str,
    pub amount: Money,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegularPurchase {
    pub term_amount: Money,
    pub air: f64,
    pub fees: Vec<Fee>,
    pub verify: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnualRate {
    pub description: &'static str,
    pub rate: f64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TermQuote {
    pub term: u32,
    /// The monthly payment, admin fee financed.
    pub term_amount: Money,
    pub fees: Vec<Fee>,
    pub annual_rates: AnnualRate,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionalPurchase {
    pub plan_id: i64,
    pub plan_name: String,
    pub terms: Vec<TermQuote>,
}

/// An instalment quote.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterestQuote {
    pub account_number: String,
    pub account_type: String,
    pub amount: Money,
    pub customer: QuoteCustomer,
    pub regular_purchase: RegularPurchase,
    pub promotional_purchase: Vec<PromotionalPurchase>,
}

fn to_money(d: Decimal) -> Money {
    Money((d * Decimal::from(100)).round().to_i64().unwrap_or(0))
}

/// Quote a purchase
///
/// The regular purchase at the account's rate, and each of the merchant's plans:
/// a term's payment is `P·r / (1 − (1+r)^−n)` with `r = APR/12` and `P` the amount
/// plus the term's admin fee, rounded half-up to cents (`P/n` at APR 0). No admin
/// fee is charged to customers in Quebec (billing state `QC`).
#[utoipa::path(post, path = "/credit-accounts/{accountNumber}/calculate-interest", tag = "point of sale",
    params(("accountNumber" = String, Path, pattern = "^[0-9]{1,14}$"), ("lang" = Option<String>, Query, description = "en, fr, en-CA or fr-CA")),
    request_body = InterestRequest,
    responses((status = 200, description = "The options", body = InterestQuote), WriteErrors),
    security(("bearer" = ["customers:read"])))]
async fn calculate_interest(
    State(state): State<AppState>,
    auth: Authed<CustomersRead>,
    params: RawPathParams,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<JsonReply> {
    let number = account_number(&params)?;
    let mut p = Problems::new();
    // Seed 004's `lang` is taken (the quote has no text of its own to translate).
    let mut q = QueryReader::new(raw.as_deref(), &mut p);
    read_lang(&mut q, &mut p);
    q.finish(&mut p);
    let amount = Obj::root(&body, &mut p).and_then(|mut o| {
        let a = required_amount(&mut o, "amount", &mut p);
        o.finish(&mut p);
        a
    });
    let amount = p.check(amount)?.unwrap_or_default();
    let db = state.db().scoped(auth.tenant());
    let a = db.account(&AccountKey::Number(number)).await?.ok_or_else(|| ApiError::not_found("Credit account"))?;
    if a.status != "open" {
        return Err(ApiError::conflict("account_closed", "A closed account cannot be quoted.", None));
    }
    let quebec = a.billing_state.as_deref() == Some("QC");
    let plans = db.plans().await?;
    let promotional_purchase = plans
        .into_iter()
        .map(|plan| {
            let apr = plan.apr.parse::<Decimal>().unwrap_or_default();
            let terms = plan
                .terms()
                .into_iter()
                .map(|t| {
                    let fee = if quebec { Decimal::ZERO } else { Decimal::new(t.admin_fee, 2) };
                    let fees = if fee.is_zero() {
                        Vec::new()
                    } else {
                        vec![Fee {
                            description: "Administrative fees:",
                            amount: to_money(fee),
                            kind: "admin_total",
                            message: FEE_MESSAGE,
                        }]
                    };
                    TermQuote {
                        term: t.months,
                        term_amount: to_money(monthly_payment(amount + fee, apr, t.months)),
                        fees,
                        annual_rates: AnnualRate {
                            description: "Annual Promotional Interest Rate:",
                            rate: apr.to_f64().unwrap_or(0.0),
                            kind: "APR",
                            message: RATE_MESSAGE,
                        },
                    }
                })
                .collect();
            PromotionalPurchase { plan_id: plan.plan_id, plan_name: plan.name, terms }
        })
        .collect();
    let air = rate(&a.interest_rate);
    let quote = InterestQuote {
        customer: QuoteCustomer {
            air,
            available_credit: available(&a),
            category_type: if a.risk_rating == "L" { "preferred" } else { "standard" },
            first_name: a.first_name,
            last_name: a.last_name,
        },
        account_number: a.account_number,
        account_type: a.account_type,
        amount: to_money(amount),
        regular_purchase: RegularPurchase { term_amount: to_money(amount), air, fees: Vec::new(), verify: true },
        promotional_purchase,
    };
    Ok(JsonReply::new(StatusCode::OK, &quote))
}

// ---- verification ----

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"format": "security_question", "securityQid": 1, "securityAnswer": "Rex", "requestId": "term-7-000123"}))]
pub struct VerifyBody {
    /// Default `sms`.
    #[schema(value_type = Option<crate::store::verification::Format>)]
    format: Option<String>,
    /// Required for `security_question`.
    #[schema(minimum = 1, maximum = 99999)]
    security_qid: Option<u32>,
    /// Required for `security_question`; compared without regard to case or spacing.
    #[schema(write_only)]
    security_answer: Option<String>,
    /// The terminal's request id.
    #[schema(max_length = 40)]
    request_id: Option<String>,
    /// When given, must be this account's virtual card.
    #[schema(write_only)]
    vcc_number: Option<String>,
}

/// `"verification_sent_to_sms"`, `"verification_sent_to_email"`, or the code itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReply {
    /// A string (where the code was sent), the code (a 6-digit number), or null
    /// (a confirmation).
    #[schema(value_type = Option<String>, example = json!(482913))]
    pub verification_code: serde_json::Value,
}

fn parse_verify(body: &serde_json::Value) -> Result<VerifyRequest, Problems> {
    let mut p = Problems::new();
    let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
    // Seed 004: `format` defaults to sms.
    let format = o.string("format", &mut p).or(Some("sms")).and_then(|s| {
        let f = Format::parse(s);
        if f.is_none() {
            p.push(
                "format",
                "'format' must be sms, email, security_question, merchant_override or regular_purchase_bypass.",
            );
        }
        f
    });
    let qid = crate::domain::card::read_int(&mut o, "securityQid", &mut p);
    let answer = o.string("securityAnswer", &mut p).map(str::to_owned);
    let request_id =
        o.string("requestId", &mut p).and_then(|s| crate::domain::text::optional_text(s, "requestId", 40, &mut p));
    let vcc_number =
        o.string("vccNumber", &mut p).map(|s| s.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>());
    o.finish(&mut p);
    let question = match (format, qid, answer) {
        (Some(Format::SecurityQuestion), Some(q), Some(a)) if !a.trim().is_empty() && a.len() <= 100 => Some((q, a)),
        (Some(Format::SecurityQuestion), q, a) => {
            if q.is_none() {
                p.push("securityQid", "'securityQid' is required for security_question.");
            }
            if a.as_deref().is_none_or(|a| a.trim().is_empty() || a.len() > 100) {
                p.push(
                    "securityAnswer",
                    "'securityAnswer' is required for security_question (at most 100 characters).",
                );
            }
            None
        }
        _ => None,
    };
    match format {
        Some(format) => p.check(VerifyRequest { format, question, request_id, vcc_number, answer: None }),
        None => Err(p),
    }
}

fn failed(locked: bool) -> ApiError {
    if locked {
        StoreError::Locked { until: crate::store::now_ms() + crate::store::verification::LOCK_MS }.into()
    } else {
        let mut p = Problems::new();
        p.push("$", "The answer or code does not match.");
        let mut e = ApiError::validation(p);
        e.0.code = "verification_failed";
        e
    }
}

/// Verify a customer
///
/// `sms` and `email` send a fresh 6-digit code through the notification outbox
/// and answer `verification_sent_to_sms` / `_email`; `security_question` (a right
/// answer), `merchant_override` (merchants allowed to, see `clientele merchant
/// configure`) and `regular_purchase_bypass` (open, low-risk accounts with credit
/// left and no failed attempt pending) answer the code itself. Codes expire after
/// 10 minutes and are stored only as keyed hashes; a new code replaces the
/// account's earlier ones. Five attempts without a success (wrong answers, wrong
/// codes, and codes sent by SMS or email) lock verification for 30 minutes (429
/// `verification_locked` with `Retry-After`). One code per account and channel
/// every 30 seconds (429 `verification_throttled`), and a merchant's sends per
/// minute are bounded (429 `verification_rate_limited`). Replies are never stored
/// for replay.
#[utoipa::path(post, path = "/credit-accounts/{accountNumber}/verify", tag = "point of sale",
    params(("accountNumber" = String, Path, pattern = "^[0-9]{1,14}$")),
    request_body = VerifyBody,
    responses((status = 200, description = "Sent, or the code", body = VerifyReply), WriteErrors,
        (status = 429, description = "Verification locked (`verification_locked`), a code sent too recently (`verification_throttled`), the merchant's sends per minute reached (`verification_rate_limited`), or too many requests (`rate_limited`)", body = crate::error::ErrorBody)),
    security(("bearer" = ["credit:write"])))]
async fn verify(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let number = account_number(&params)?;
    let mut req = parse_verify(&body)?;
    let (_, allow_override) = state.db().merchant_settings(auth.tenant()).await?;
    let policy = VerifyPolicy { allow_override, sends_per_minute: state.limits().verification_sends_per_minute };
    let vault = state.vault();
    if let Some((qid, answer)) = &req.question
        && let Some(stored) = state.db().scoped(auth.tenant()).answer_to_check(&number, *qid).await?
    {
        // Checked before the write is queued: argon2 is slow, and the writer is shared.
        let (checker, normalized) = (vault.clone(), normalize_answer(answer));
        let verdict = slow_work(move || {
            let check = checker.check_answer(&stored, &normalized);
            let rehash = match check {
                AnswerCheck::RightButUnpeppered => checker.hash_answer(&normalized).ok(),
                _ => None,
            };
            AnswerVerdict { checked: stored, check, rehash }
        });
        req.answer = Some(verdict.await.map_err(ApiError::internal)?);
    }
    let outcome = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let o = tx.verify(&vault, &number, &req, policy).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(o)
        })
        .await?;
    let code = match outcome {
        Outcome::Sent(channel) => serde_json::Value::String(format!("verification_sent_to_{channel}")),
        Outcome::Code(c) => serde_json::Value::from(c),
        Outcome::Failed { locked } => return Err(failed(locked)),
        Outcome::Confirmed => serde_json::Value::Null,
    };
    let mut res = JsonReply::new(StatusCode::OK, &VerifyReply { verification_code: code }).into_response();
    res.extensions_mut().insert(SensitiveReply);
    Ok(res)
}

#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"code": "123456"}))]
pub struct ConfirmBody {
    /// The 6-digit code.
    #[schema(write_only, pattern = r"^\s*[0-9]{6}\s*$")]
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmed {
    pub verified: bool,
}

/// Confirm a verification code
///
/// A code that was sent or given, unused and less than 10 minutes old. A wrong
/// code counts toward the lock.
#[utoipa::path(post, path = "/credit-accounts/{accountNumber}/verify/confirm", tag = "point of sale",
    params(("accountNumber" = String, Path, pattern = "^[0-9]{1,14}$")),
    request_body = ConfirmBody,
    responses((status = 200, description = "Verified", body = Confirmed), WriteErrors,
        (status = 429, description = "Verification locked (`verification_locked`), or too many requests (`rate_limited`)", body = crate::error::ErrorBody)),
    security(("bearer" = ["credit:write"])))]
async fn confirm(
    State(state): State<AppState>,
    auth: Authed<CreditWrite>,
    params: RawPathParams,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let number = account_number(&params)?;
    let mut p = Problems::new();
    let code = Obj::root(&body, &mut p).and_then(|mut o| {
        let code = o.get("code").and_then(|v| match v {
            serde_json::Value::String(s) => s.trim().parse::<u32>().ok(),
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        });
        if code.is_none() {
            p.push("code", "'code' must be the 4 to 6 digit code.");
        }
        o.finish(&mut p);
        code
    });
    let code = p.check(code)?.unwrap_or_default();
    let vault = state.vault();
    let outcome = state
        .db()
        .write(auth.actor(), move |mut tx| async move {
            let o = tx.confirm_code(&vault, &number, code).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(o)
        })
        .await?;
    match outcome {
        Outcome::Failed { locked } => Err(failed(locked)),
        _ => {
            let mut res = JsonReply::new(StatusCode::OK, &Confirmed { verified: true }).into_response();
            res.extensions_mut().insert(SensitiveReply);
            Ok(res)
        }
    }
}
