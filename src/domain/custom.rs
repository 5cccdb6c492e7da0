//! Custom parameters (seed 002): fields a merchant declares and then sends and
//! reads at the top level of its customers.

use serde_json::Value;
use uuid::Uuid;

use super::customer::{READ_ONLY, UPDATABLE, parse_date};
use super::provider::FIELDS as PROVIDER_FIELDS;
use super::text::optional_text;
use super::{Obj, Problems};

/// The type of a custom parameter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = CustomParameterType, rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Boolean,
    Date,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Date => "date",
        }
    }

    pub fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" => ParamType::String,
            "number" => ParamType::Number,
            "boolean" => ParamType::Boolean,
            "date" => ParamType::Date,
            _ => return None,
        })
    }
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub id: Uuid,
    pub name: String,
    pub kind: ParamType,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
    pub retired: bool,
}

/// The body of `PUT /custom-parameters/{name}`.
#[derive(Debug, Clone)]
pub struct DeclarationInput {
    pub kind: ParamType,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
}

/// Names a custom parameter may not take besides the representation's fields
/// ([`UPDATABLE`], [`READ_ONLY`]): what else a customer body may carry.
const RESERVED: [&str; 6] = ["id", "status", "paymentMethodsCards", "paymentMethodsAchAccounts", "providers", "custom"];

/// Whether `name` is a field of the customer contract (compared without regard
/// to case), which a parameter may never shadow.
fn reserved(name: &str) -> bool {
    let fields = UPDATABLE.iter().chain(&READ_ONLY).chain(&RESERVED).chain(&PROVIDER_FIELDS);
    fields.into_iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// The naming rule: a letter, then letters, digits or `_`; at most 64 characters;
/// not a field of the customer contract.
pub fn check_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let shape = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !shape {
        return Err(
            "A custom parameter name starts with a letter and has only letters, digits and '_' (at most 64).".into()
        );
    }
    if reserved(name) {
        return Err(format!("'{name}' is a field of the customer and cannot be a custom parameter."));
    }
    Ok(())
}

impl DeclarationInput {
    pub fn parse(body: &Value) -> Result<DeclarationInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let kind = o.required_string("type", &mut p).and_then(|s| {
            let k = ParamType::parse(s);
            if k.is_none() {
                p.push("type", "'type' must be one of string, number, boolean, date.");
            }
            k
        });
        let required = o.bool("required", &mut p).unwrap_or(false);
        let secret = o.bool("secret", &mut p).unwrap_or(false);
        let description = o.string("description", &mut p).and_then(|s| optional_text(s, "description", 500, &mut p));
        o.finish(&mut p);
        match kind {
            Some(kind) => p.check(DeclarationInput { kind, required, secret, description }),
            None => Err(p),
        }
    }
}

/// A value sent for a declared parameter, type-checked.
#[derive(Debug, Clone)]
pub struct CustomValue {
    pub name: String,
    pub secret: bool,
    /// The value as stored and shown (numbers normalized).
    pub json: Value,
    /// Canonical text for exact filtering: strings as sent, numbers normalized
    /// (`10.50` → `10.5`), booleans `true`/`false`, dates `YYYY-MM-DD`.
    pub key: String,
}

impl CustomValue {
    /// What responses show of a secret: `****` and the last 4 characters when the
    /// value has at least 12, otherwise `****` alone.
    pub fn hint(&self) -> String {
        obfuscate(&self.key)
    }
}

pub fn obfuscate(secret: &str) -> String {
    let n = secret.chars().count();
    if n >= 12 {
        let tail: String = secret.chars().skip(n - 4).collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

/// Checks `v` against `kind`; returns the value to store and its canonical key.
pub fn typed_value(kind: ParamType, v: &Value) -> Result<(Value, String), &'static str> {
    match (kind, v) {
        (ParamType::String, Value::String(s)) => {
            if s.chars().count() > 1000 || s.contains('\0') || s.chars().any(super::text::is_bidi_control) {
                Err("must be a string of at most 1000 characters, without bidirectional formatting characters")
            } else {
                Ok((v.clone(), s.clone()))
            }
        }
        (ParamType::Number, Value::Number(n)) => {
            let d = super::money::decimal_from_text(&n.to_string())
                .ok_or("must be a number with at most 28 significant digits")?
                .normalize();
            let text = d.to_string();
            let json: Value = serde_json::from_str(&text).map_err(|_| "must be a number")?;
            Ok((json, text))
        }
        (ParamType::Boolean, Value::Bool(b)) => Ok((v.clone(), b.to_string())),
        (ParamType::Date, Value::String(s)) if parse_date(s).is_some() => Ok((v.clone(), s.clone())),
        (ParamType::String, _) => Err("must be a string"),
        (ParamType::Number, _) => Err("must be a number"),
        (ParamType::Boolean, _) => Err("must be true or false"),
        (ParamType::Date, _) => Err("must be a date in the form YYYY-MM-DD"),
    }
}

/// A secret parameter a body leaves as it is: left out, or sent back in the
/// masked form responses show (secrets are write-only: what a client read is
/// never the value). The store keeps the stored value, and refuses one that
/// does not match (`shown` not this customer's mask, or nothing stored where
/// the parameter is required).
#[derive(Debug, Clone)]
pub struct Unchanged {
    pub name: String,
    pub required: bool,
    /// The masked form sent, if one was.
    pub shown: Option<String>,
}

impl Unchanged {
    /// Whether the store must check it against what is stored.
    pub fn is_checked(&self) -> bool {
        self.required || self.shown.is_some()
    }
}

/// What a body says of the merchant's custom parameters.
#[derive(Debug, Clone, Default)]
pub struct CustomValues {
    /// Values to store, type-checked.
    pub set: Vec<CustomValue>,
    /// Secret parameters left as they are.
    pub unchanged: Vec<Unchanged>,
}

impl CustomValues {
    /// Whether writing them on a new customer reads or writes anything.
    pub fn touch_the_store(&self) -> bool {
        !self.set.is_empty() || self.unchanged.iter().any(Unchanged::is_checked)
    }
}

/// The names of the active (not retired) declarations: what an update replaces.
pub fn active_names(declarations: &[Declaration]) -> Vec<String> {
    declarations.iter().filter(|d| !d.retired).map(|d| d.name.clone()).collect()
}

/// Whether `s` has the shape of a masked secret: `****`, or `****` and 4 characters.
pub fn looks_masked(s: &str) -> bool {
    s.strip_prefix("****").is_some_and(|tail| tail.is_empty() || tail.chars().count() == 4)
}

/// Reads every active declared parameter from a customer body: type-checked,
/// `required` enforced (a secret's by the store, which knows what is stored).
/// Undeclared keys stay unread, so `finish` reports them. A secret that is left
/// out or sent masked stays as it is; `null` clears it.
pub fn read_values(o: &mut Obj<'_>, declarations: &[Declaration], p: &mut Problems) -> CustomValues {
    let mut out = CustomValues::default();
    for d in declarations.iter().filter(|d| !d.retired) {
        let sent = o.contains(&d.name);
        match o.get_dynamic(&d.name) {
            None if d.secret && !sent => {
                out.unchanged.push(Unchanged { name: d.name.clone(), required: d.required, shown: None });
            }
            None => {
                if d.required {
                    p.push(d.name.clone(), format!("'{}' is required.", d.name));
                }
            }
            Some(Value::String(s)) if d.secret && looks_masked(s) => {
                out.unchanged.push(Unchanged { name: d.name.clone(), required: d.required, shown: Some(s.clone()) });
            }
            Some(v) => match typed_value(d.kind, v) {
                Ok((json, key)) => out.set.push(CustomValue { name: d.name.clone(), secret: d.secret, json, key }),
                Err(why) => p.push(d.name.clone(), format!("'{}' {why}.", d.name)),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for ok in ["loyaltyTier", "a", "x_1", &"a".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "_x", "a-b", "a b", "é", &"a".repeat(65), "email", "EMAIL", "FirstName", "cards"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_by_type() {
        assert_eq!(typed_value(ParamType::Number, &json!(10.50)).unwrap(), (json!(10.5), "10.5".into()));
        assert_eq!(typed_value(ParamType::Number, &json!(3)).unwrap().1, "3");
        assert!(typed_value(ParamType::Number, &json!("3")).is_err());
        assert_eq!(typed_value(ParamType::Boolean, &json!(true)).unwrap().1, "true");
        assert!(typed_value(ParamType::Boolean, &json!("true")).is_err());
        assert!(typed_value(ParamType::Date, &json!("2026-02-30")).is_err());
        assert_eq!(typed_value(ParamType::Date, &json!("2026-02-28")).unwrap().1, "2026-02-28");
        assert!(typed_value(ParamType::String, &json!(5)).is_err());
    }

    #[test]
    fn masked_forms() {
        for masked in ["****", "****7890", "****é,.!"] {
            assert!(looks_masked(masked), "{masked}");
        }
        for plain in ["***", "****12345", "1234****", "", "sk_live_1234567890"] {
            assert!(!looks_masked(plain), "{plain}");
        }
        for secret in ["sk_live_1234567890", "short", "123456789012"] {
            assert!(looks_masked(&obfuscate(secret)), "every mask the API shows has the shape");
        }
    }

    #[test]
    fn obfuscation() {
        assert_eq!(obfuscate("sk_live_1234567890"), "****7890");
        assert_eq!(obfuscate("123456789012"), "****9012");
        assert_eq!(obfuscate("12345678901"), "****");
        assert_eq!(obfuscate(""), "****");
    }
}
