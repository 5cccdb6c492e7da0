//! The one error type of the HTTP API.
//!
//! Every 4xx/5xx leaves the service through [`ApiError`], so every client sees the
//! same body (SPEC section 1): `errors` keyed by JSON path, a `details` summary, a
//! stable `errorCode`, and the request's correlation id. Internal causes are
//! logged with that id and never shown.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Problems;
use crate::http::correlation;
use crate::store::StoreError;

/// The error body, identical for every 4xx and 5xx.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Problems keyed by the JSON path of the offending field (`billingAddress.postalCode`,
    /// `paymentMethodsCards[1].pan`); `$` for the body as a whole.
    #[schema(example = json!({"email": ["'email' is not a valid email address."]}))]
    pub errors: BTreeMap<String, Vec<String>>,
    /// A human-readable summary of all problems.
    pub details: String,
    pub status_code: u16,
    /// Always `clientele`.
    pub source: &'static str,
    #[schema(example = "ValidationException")]
    pub exception_type: &'static str,
    pub correlation_id: String,
    /// The existing object a conflict refers to, when there is one.
    pub entity_id: Option<String>,
    /// Stable snake_case code for clients to switch on.
    #[schema(example = "validation_failed")]
    pub error_code: &'static str,
}

/// A validation error lists at most this many problems.
const MAX_PROBLEMS: usize = 100;

/// An API error; boxed so `Result<T, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct ApiError(pub(crate) Box<ErrorParts>);

#[derive(Debug)]
pub struct ErrorParts {
    pub status: StatusCode,
    pub code: &'static str,
    pub exception: &'static str,
    pub errors: BTreeMap<String, Vec<String>>,
    pub details: String,
    pub entity_id: Option<String>,
    pub retry_after: Option<u64>,
    /// Logged with the correlation id, never sent.
    pub cause: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, exception: &'static str, details: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorParts {
            status,
            code,
            exception,
            errors: BTreeMap::new(),
            details: details.into(),
            entity_id: None,
            retry_after: None,
            cause: None,
        }))
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    fn with(mut self, f: impl FnOnce(&mut ErrorParts)) -> Self {
        f(&mut self.0);
        self
    }

    /// A problem with one field (or `$`, the whole body).
    pub fn field(status: StatusCode, code: &'static str, path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err =
            ApiError::new(status, code, "ValidationException", format!("Validation failed: \n -- {path}: {message}"));
        err.0.errors.insert(path.to_owned(), vec![message]);
        err
    }

    pub fn validation(problems: Problems) -> Self {
        let code = if problems.only_unknown_fields() { "unknown_field" } else { "validation_failed" };
        let mut details = String::from("Validation failed:");
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all = problems.into_vec();
        // A body of a million unknown keys gets an answer of bounded size.
        let more = all.len().saturating_sub(MAX_PROBLEMS);
        all.truncate(MAX_PROBLEMS);
        if more > 0 {
            let p = crate::domain::Problem {
                path: "$".into(),
                message: format!("...and {more} more problems."),
                kind: crate::domain::ProblemKind::Invalid,
            };
            all.push(p);
        }
        for p in all {
            details.push_str(" \n -- ");
            details.push_str(&p.path);
            details.push_str(": ");
            details.push_str(&p.message);
            errors.entry(p.path).or_default().push(p.message);
        }
        ApiError::new(StatusCode::BAD_REQUEST, code, "ValidationException", details).with(|e| e.errors = errors)
    }

    pub fn malformed_json(message: impl Into<String>) -> Self {
        ApiError::field(StatusCode::BAD_REQUEST, "malformed_json", "$", message)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "NotFoundException", format!("{what} was not found."))
    }

    pub fn route_not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "NotFoundException", "No route matches this path.")
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "MethodNotAllowedException",
            "This method is not allowed on this path.",
        )
    }

    pub fn unauthorized(details: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "UnauthorizedException", details)
    }

    pub fn forbidden(scope: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "ForbiddenException",
            format!("This API key lacks the '{scope}' scope."),
        )
    }

    pub fn conflict(code: &'static str, details: impl Into<String>, entity_id: Option<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, "ConflictException", details).with(|e| e.entity_id = entity_id)
    }

    pub fn precondition_failed(current_version: i64) -> Self {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            "PreconditionFailedException",
            format!("If-Match does not match the current version ({current_version})."),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "PayloadTooLargeException",
            format!("The request body is larger than {limit} bytes."),
        )
    }

    pub fn unsupported_media_type() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "UnsupportedMediaTypeException",
            "Request bodies must be sent with 'Content-Type: application/json'.",
        )
    }

    /// The request ran past its deadline (`CLIENTELE_REQUEST_TIMEOUT_MS`).
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "ServiceUnavailableException",
            format!("The request was not answered within {} ms; retry it.", limit.as_millis()),
        )
        .with(|e| e.retry_after = Some(1))
    }

    /// The client stopped sending the request's body.
    pub fn body_timeout() -> Self {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_body_timeout",
            "RequestTimeoutException",
            "The request body stopped arriving before it was complete.",
        )
    }

    pub fn unavailable(details: &str) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "ServiceUnavailableException", details)
            .with(|e| e.retry_after = Some(1))
    }

    /// An unexpected failure: the cause is logged, the client sees only the correlation id.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "InternalServerException",
            "An unexpected error occurred; quote the correlation id when reporting it.",
        )
        .with(|e| e.cause = Some(cause))
    }

    pub fn set_retry_after(&mut self, secs: u64) {
        self.0.retry_after = Some(secs);
    }

    pub fn body(&self) -> ErrorBody {
        let e = &self.0;
        ErrorBody {
            errors: e.errors.clone(),
            details: e.details.clone(),
            status_code: e.status.as_u16(),
            source: "clientele",
            exception_type: e.exception,
            correlation_id: correlation::current(),
            entity_id: e.entity_id.clone(),
            error_code: e.code,
        }
    }
}

impl From<Problems> for ApiError {
    fn from(p: Problems) -> Self {
        ApiError::validation(p)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_query_timeout(&e) {
            tracing::warn!(correlation_id = %correlation::current(), "a query ran past its time budget and was stopped");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "query_timeout",
                "ServiceUnavailableException",
                "The query took longer than the service allows; narrow it (fewer or longer search words, a filter).",
            );
        }
        if crate::store::is_unavailable(&e) {
            tracing::error!(correlation_id = %correlation::current(), error = %e, "database unavailable");
            return ApiError::unavailable("The database is unavailable; try again shortly.");
        }
        // A unique key another write took meanwhile, where the store had no more
        // precise name for it: the client's request met the state it changed.
        if crate::store::is_unique_violation(&e) {
            return ApiError::conflict(
                "conflict",
                "Another request changed this data meanwhile; read it again and retry.",
                None,
            );
        }
        ApiError::internal(e)
    }
}

impl From<crate::store::WriteAborted> for ApiError {
    fn from(e: crate::store::WriteAborted) -> Self {
        if e.unavailable {
            tracing::error!(correlation_id = %correlation::current(), error = %e, "database unavailable");
            return ApiError::unavailable("The database is unavailable; try again shortly.");
        }
        ApiError::internal(e)
    }
}

/// What the store's refusals are on the wire.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::VersionMismatch { current } => ApiError::precondition_failed(current),
            StoreError::Db(e) => ApiError::from(e),
            StoreError::Aborted(e) => ApiError::from(e),
            StoreError::Duplicate { existing } => ApiError::conflict(
                "duplicate_payment_method",
                "This payment method is already on file for this customer.",
                Some(existing.to_string()),
            ),
            StoreError::Conflict { code, message } => ApiError::conflict(code, message, None),
            StoreError::DuplicateReference { existing } => ApiError::conflict(
                "duplicate_external_reference",
                "Another customer already has this externalReference.",
                existing.map(|id| id.to_string()),
            ),
            StoreError::Forbidden { code, message } => {
                ApiError::new(StatusCode::FORBIDDEN, code, "ForbiddenException", message)
            }
            StoreError::Locked { until } => {
                let secs = ((until - crate::store::now_ms()) / 1000).max(1) as u64;
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "verification_locked",
                    "TooManyRequestsException",
                    "Too many failed verifications: verification is locked for this account for 30 minutes.",
                );
                e.set_retry_after(secs);
                e
            }
            StoreError::Throttled { code, message, retry_after_ms } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, "TooManyRequestsException", message);
                e.set_retry_after(((retry_after_ms + 999) / 1000).max(1) as u64);
                e
            }
            StoreError::Invalid { path, message } => {
                ApiError::field(StatusCode::BAD_REQUEST, "validation_failed", &path, message)
            }
            StoreError::Crypto(e) => ApiError::internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sql) => ApiError::from(sql),
            Err(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.0.cause {
            tracing::error!(correlation_id = %correlation::current(), error = format!("{cause:#}"), "internal error");
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = (self.0.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
            .into_response();
        if let Some(secs) = self.0.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.0.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would be accepted.
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"clientele\""));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
