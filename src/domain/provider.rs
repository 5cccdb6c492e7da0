//! Payment providers linked to a customer (seed 002). Three fields are secrets:
//! `apiKey`, `paymentProvider.key` and `paymentProvider.hmacKey`.

use std::fmt;

use serde_json::Value;
use zeroize::Zeroizing;

use super::currency::active_currency;
use super::text::{optional_text, required_text};
use super::{Obj, Problems};

/// A credential: masked in `Debug`, never serialized, wiped on drop.
pub struct Credential(Zeroizing<String>);

impl Credential {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({})", super::custom::obfuscate(&self.0))
    }
}

#[derive(Debug, Default)]
pub struct PaymentProviderInput {
    pub customer_id: Option<String>,
    pub provider_type: Option<String>,
    pub key: Option<Credential>,
    pub login_id: Option<String>,
    pub hmac_key: Option<Credential>,
    pub commercial_name: Option<String>,
    pub currencies: Vec<String>,
}

#[derive(Debug)]
pub struct ProviderInput {
    pub api_key: Option<Credential>,
    pub provider_config_id: String,
    pub provider: String,
    pub payment_provider: Option<PaymentProviderInput>,
}

fn credential(o: &mut Obj<'_>, key: &'static str, p: &mut Problems) -> Option<Credential> {
    let path = o.path(key);
    let raw = o.string(key, p)?;
    if raw.is_empty() {
        return None;
    }
    // Credentials are write-only: a mask the API showed is never stored as one.
    if super::custom::looks_masked(raw) {
        p.push(path.clone(), format!("'{path}' is a masked value; send the credential itself."));
        return None;
    }
    if raw.chars().count() > 1000 || raw.chars().any(char::is_control) {
        p.push(path.clone(), format!("'{path}' must be at most 1000 characters without control characters."));
        return None;
    }
    Some(Credential(Zeroizing::new(raw.to_owned())))
}

fn text(o: &mut Obj<'_>, key: &'static str, max: usize, p: &mut Problems) -> Option<String> {
    let path = o.path(key);
    o.string(key, p).and_then(|s| optional_text(s, &path, max, p))
}

/// The top-level fields of seed 002's provider link, which a customer create
/// may carry too.
pub const FIELDS: [&str; 4] = ["apiKey", "providerConfigId", "provider", "paymentProvider"];

impl ProviderInput {
    /// A link body.
    pub fn parse(body: &Value) -> Result<ProviderInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let input = Self::read(&mut o, &mut p);
        o.finish(&mut p);
        match input {
            Some(input) => p.check(input),
            None => Err(p),
        }
    }

    /// The link's fields of `o` (the others are left to the caller).
    pub fn read(o: &mut Obj<'_>, p: &mut Problems) -> Option<ProviderInput> {
        let api_key = credential(o, "apiKey", p);
        let provider_config_id = o
            .required_string("providerConfigId", p)
            .and_then(|s| required_text(s, &o.path("providerConfigId"), 200, p));
        let provider = o.required_string("provider", p).and_then(|s| required_text(s, &o.path("provider"), 100, p));
        let payment_provider = o.object("paymentProvider", p).map(|mut pp| {
            let out = PaymentProviderInput {
                customer_id: text(&mut pp, "customerId", 200, p),
                provider_type: text(&mut pp, "paymentProviderType", 100, p),
                key: credential(&mut pp, "key", p),
                login_id: text(&mut pp, "loginId", 200, p),
                hmac_key: credential(&mut pp, "hmacKey", p),
                commercial_name: text(&mut pp, "commercialName", 200, p),
                currencies: read_currencies(&mut pp, p),
            };
            pp.finish(p);
            out
        });
        Some(ProviderInput { api_key, provider_config_id: provider_config_id?, provider: provider?, payment_provider })
    }
}

/// At most this many currencies per link: every active ISO 4217 code fits.
pub const MAX_CURRENCIES: usize = 200;

fn read_currencies(o: &mut Obj<'_>, p: &mut Problems) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(items) = o.array("availableCurrencies", MAX_CURRENCIES, p) else { return out };
    for (i, v) in items.iter().enumerate() {
        let path = format!("paymentProvider.availableCurrencies[{i}]");
        match v.as_str() {
            Some(code) if active_currency(code) => {
                if out.iter().any(|c| c == code) {
                    p.push(path.clone(), format!("'{path}' lists {code} twice."));
                } else {
                    out.push(code.to_owned());
                }
            }
            Some(code) if active_currency(&code.to_ascii_uppercase()) => {
                p.push(path.clone(), format!("'{path}' must be uppercase ('{}').", code.to_ascii_uppercase()))
            }
            _ => p.push(path.clone(), format!("'{path}' must be an active ISO 4217 currency code such as 'CAD'.")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_002_body() {
        let body = json!({
            "apiKey": "ak_live_0123456789abcdef", "providerConfigId": "cfg-1", "provider": "stripe",
            "paymentProvider": {"customerId": "cus_123", "paymentProviderType": "payment gateway", "key": "sk_live_abcdefghijklmnop",
                "loginId": "merchant-7", "hmacKey": "short", "commercialName": "Acme", "availableCurrencies": ["CAD", "USD"]}
        });
        let p = ProviderInput::parse(&body).unwrap();
        assert_eq!(format!("{:?}", p.api_key.unwrap()), "Credential(****cdef)");
        let pp = p.payment_provider.unwrap();
        assert_eq!(pp.currencies, ["CAD", "USD"]);
        assert_eq!(format!("{:?}", pp.hmac_key.unwrap()), "Credential(****)");
        let bad = json!({"paymentProvider": {"availableCurrencies": ["cad", "HRK", "CAD", "CAD"], "extra": 1}});
        let paths: Vec<String> = ProviderInput::parse(&bad).err().unwrap().iter().map(|x| x.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "providerConfigId",
                "provider",
                "paymentProvider.availableCurrencies[0]",
                "paymentProvider.availableCurrencies[1]",
                "paymentProvider.availableCurrencies[3]",
                "paymentProvider.extra"
            ]
        );
    }
}
