//! Extractors that turn request parts into values or into the contract's errors
//! (400/413/415/412), never into axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::Problems;
use crate::error::ApiError;

/// Request bodies are capped at 1 MiB.
pub const BODY_LIMIT: usize = 1 << 20;

/// Whether a `Content-Type` is JSON (`application/json`, optionally with parameters, or `+json`).
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the whole body, up to [`BODY_LIMIT`].
pub async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        let mut causes = std::iter::successors(std::error::Error::source(&e), |c| c.source());
        let cause =
            causes.find(|c| c.is::<http_body_util::LengthLimitError>() || c.is::<tower_http::timeout::TimeoutError>());
        match cause {
            Some(c) if c.is::<http_body_util::LengthLimitError>() => ApiError::payload_too_large(BODY_LIMIT),
            Some(_) => ApiError::body_timeout(),
            None => ApiError::malformed_json("The request body could not be read."),
        }
    })
}

/// Parses JSON text, reporting where it is broken.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_json("The request body is empty; a JSON object is expected."));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::malformed_json(format!(
            "The request body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })
}

/// A JSON request body, parsed but not yet validated.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let ct = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !is_json(ct) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = read_body(req.into_body()).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// `If-Match`: the version the client last saw, or `None` when absent or `*`.
/// A value that is no version of ours cannot match, so it fails like a stale one.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(raw) = parts.headers.get(IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let s = raw.to_str().unwrap_or("").trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        let tag = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        Ok(IfMatch(Some(tag.parse::<i64>().unwrap_or(-1))))
    }
}

/// The `ETag` of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A path parameter's text, `""` when the route has none of that name.
pub fn path_param<'a>(params: &'a RawPathParams, name: &str) -> &'a str {
    params.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| v)
}

/// A UUID path parameter, or a 400 naming it.
pub fn path_uuid(params: &RawPathParams, name: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path_param(params, name)).map_err(|_| {
        let mut p = Problems::new();
        p.push(name, format!("'{name}' must be a UUID."));
        ApiError::validation(p)
    })
}

/// The query string read field by field, like [`crate::domain::Obj`]: unknown
/// parameters and every malformed value are reported together.
pub struct QueryReader {
    pairs: Vec<(String, String)>,
    known: Vec<&'static str>,
}

impl QueryReader {
    /// Values with control characters (NUL included, which PostgreSQL text cannot
    /// hold) are reported here, once per parameter, and then read as absent.
    pub fn new(raw: Option<&str>, p: &mut Problems) -> QueryReader {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect();
        let mut bad: Vec<String> = Vec::new();
        pairs.retain(|(k, v)| {
            let ok = !k.chars().chain(v.chars()).any(char::is_control);
            if !ok {
                let name: String = k.chars().filter(|c| !c.is_control()).collect();
                if !bad.contains(&name) {
                    bad.push(name);
                }
            }
            ok
        });
        for k in bad {
            let message = format!("'{k}' must not contain control characters.");
            p.push(k, message);
        }
        QueryReader { pairs, known: Vec::new() }
    }

    /// A single-valued parameter, as sent: an empty value is a value, which the
    /// caller's parser refuses when it is not one (a date, a number, a name from a
    /// list).
    pub fn one(&mut self, key: &'static str, p: &mut Problems) -> Option<&str> {
        self.known.push(key);
        let mut values = self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            p.push(key, format!("'{key}' may be given only once."));
            return None;
        }
        first
    }

    /// Whether the query names `key` at all (with any value, empty included).
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// A free-text filter: empty reads as absent (no filter), as an HTML form
    /// sends an unfilled field.
    pub fn text(&mut self, key: &'static str, p: &mut Problems) -> Option<&str> {
        self.one(key, p).filter(|v| !v.is_empty())
    }

    /// Every `(key, value)` whose key starts with `prefix` (a dynamic family such as
    /// `custom.<name>`); they count as known.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pairs).into_iter().partition(|(k, _)| k.starts_with(prefix));
        self.pairs = rest;
        taken
    }

    /// A repeatable parameter; each value may also be a comma-separated list.
    pub fn many(&mut self, key: &'static str) -> Vec<&str> {
        self.known.push(key);
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn int(&mut self, key: &'static str, min: i64, max: i64, p: &mut Problems) -> Option<i64> {
        let raw = self.one(key, p)?;
        match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                p.push(key, format!("'{key}' must be a whole number from {min} to {max}."));
                None
            }
        }
    }

    pub fn bool(&mut self, key: &'static str, p: &mut Problems) -> Option<bool> {
        match self.one(key, p)? {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                p.push(key, format!("'{key}' must be true or false."));
                None
            }
        }
    }

    pub fn finish(self, p: &mut Problems) {
        for (k, _) in &self.pairs {
            if !self.known.contains(&k.as_str()) && !p.iter().any(|x| &x.path == k) {
                p.unknown(k.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }

    #[test]
    fn query_reader_reports_repeats_and_unknowns() {
        let mut p = Problems::new();
        let mut q = QueryReader::new(Some("page=2&page=3&x=1&ids=a,b&ids=c&n=%00"), &mut p);
        assert_eq!(q.int("page", 1, 10, &mut p), None);
        assert_eq!(q.many("ids"), ["a", "b", "c"]);
        q.finish(&mut p);
        let paths: Vec<_> = p.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["n", "page", "x"]);
    }
}
