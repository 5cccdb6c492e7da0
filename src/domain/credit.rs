//! Point-of-sale credit (seed 004): financing plans, instalment payments, and
//! the rules of opening an account.

use std::collections::BTreeMap;

use crate::domain::money::MAX_AMOUNT;
use rust_decimal::prelude::*;
use serde_json::Value;

use super::card::read_int;
use super::text::{optional_text, required_text};
use super::{Obj, Problems};

/// A monthly payment: `P·r / (1 − (1+r)^−n)` with `r = APR/12`, or `P/n` when the
/// APR is 0; rounded half-up to cents. All in exact decimal arithmetic.
pub fn monthly_payment(principal: Decimal, apr: Decimal, months: u32) -> Decimal {
    let n = Decimal::from(months.max(1));
    if apr.is_zero() {
        return (principal / n).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    }
    let r = apr / Decimal::from(12);
    let mut growth = Decimal::ONE;
    for _ in 0..months.max(1) {
        growth *= Decimal::ONE + r;
    }
    let payment = principal * r / (Decimal::ONE - Decimal::ONE / growth);
    payment.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// An amount in a request: a JSON number or numeric string, > 0, at most 2 decimals.
pub fn parse_amount(v: &Value, path: &str, p: &mut Problems) -> Option<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => {
            p.push(path, format!("'{path}' must be a number."));
            return None;
        }
    };
    match super::money::decimal_from_text(&text) {
        Some(d) if d > Decimal::ZERO && d.normalize().scale() <= 2 && d <= Decimal::new(MAX_AMOUNT, 2) => Some(d),
        Some(d) if d <= Decimal::ZERO => {
            p.push(path, format!("'{path}' must be greater than 0."));
            None
        }
        Some(_) => {
            p.push(path, format!("'{path}' must have at most 2 decimals and be at most 999999999999.99."));
            None
        }
        None => {
            p.push(path, format!("'{path}' must be a number."));
            None
        }
    }
}

/// A required amount field of an object, read with [`parse_amount`].
pub fn required_amount(o: &mut Obj<'_>, key: &'static str, p: &mut Problems) -> Option<Decimal> {
    match o.get(key) {
        Some(v) => parse_amount(v, &o.path(key), p),
        None => {
            let path = o.path(key);
            p.push(path.clone(), format!("'{path}' is required."));
            None
        }
    }
}

/// Minor units (cents) of an amount that has at most 2 decimals.
pub fn to_minor(d: Decimal) -> Option<i64> {
    (d * Decimal::from(100)).to_i64()
}

/// A rate such as `0.0999`: 0 ≤ rate < 1, at most 6 decimals.
pub fn parse_rate(v: Option<&Value>, path: &str, p: &mut Problems) -> Option<Decimal> {
    let v = v?;
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => String::new(),
    };
    match super::money::decimal_from_text(&text) {
        Some(d) if d >= Decimal::ZERO && d < Decimal::ONE && d.normalize().scale() <= 6 => Some(d.normalize()),
        _ => {
            p.push(
                path,
                format!("'{path}' must be a rate from 0 to below 1 with at most 6 decimals (0.0999 is 9.99 %)."),
            );
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub months: u32,
    /// Minor units.
    pub admin_fee: i64,
}

/// A merchant's financing plan.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub name: String,
    pub offer_category: String,
    pub apr: Decimal,
    pub terms: Vec<Term>,
}

impl PlanInput {
    pub fn parse(body: &Value) -> Result<PlanInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let name = o.required_string("planName", &mut p).and_then(|s| required_text(s, "planName", 100, &mut p));
        let offer_category =
            o.required_string("offerCategory", &mut p).and_then(|s| required_text(s, "offerCategory", 50, &mut p));
        let apr = if o.get("apr").is_some() {
            let v = o.get("apr");
            parse_rate(v, "apr", &mut p)
        } else {
            p.push("apr", "'apr' is required.");
            None
        };
        let mut terms: Vec<Term> = Vec::new();
        match o.array("terms", MAX_TERMS, &mut p) {
            None if !p.iter().any(|x| x.path == "terms") => p.push("terms", "'terms' is required."),
            None => {}
            Some(items) if items.is_empty() => p.push("terms", "'terms' must list at least one term."),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("terms[{i}]");
                    let Some(mut t) = Obj::at(item, path.clone(), &mut p) else { continue };
                    let months = read_int(&mut t, "term", &mut p);
                    let fee = t.get("adminFee").map(|v| {
                        if v.as_f64() == Some(0.0) || v.as_str() == Some("0") {
                            Some(Decimal::ZERO)
                        } else {
                            parse_amount(v, &format!("{path}.adminFee"), &mut p)
                        }
                    });
                    t.finish(&mut p);
                    match months {
                        Some(m) if (1..=120).contains(&m) => {
                            if terms.iter().any(|x| x.months == m as u32) {
                                p.push(format!("{path}.term"), format!("'{path}.term' lists {m} months twice."));
                            }
                            let fee = fee.flatten().unwrap_or(Decimal::ZERO);
                            terms.push(Term {
                                months: m as u32,
                                admin_fee: (fee * Decimal::from(100)).to_i64().unwrap_or(0),
                            });
                        }
                        Some(_) => {
                            p.push(format!("{path}.term"), format!("'{path}.term' must be from 1 to 120 months."))
                        }
                        None if !p.iter().any(|x| x.path == format!("{path}.term")) => {
                            p.push(format!("{path}.term"), format!("'{path}.term' is required."))
                        }
                        None => {}
                    }
                }
            }
        }
        o.finish(&mut p);
        terms.sort_by_key(|t| t.months);
        match (name, offer_category, apr) {
            (Some(name), Some(offer_category), Some(apr)) => p.check(PlanInput { name, offer_category, apr, terms }),
            _ => Err(p),
        }
    }
}

/// `a***t@example.com`: first and last character of the local part.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else { return "***".into() };
    let chars: Vec<char> = local.chars().collect();
    match chars.as_slice() {
        [] => format!("***@{domain}"),
        [one] => format!("{one}***@{domain}"),
        [first, .., last] => format!("{first}***{last}@{domain}"),
    }
}

/// `***-***-2222`: the last 4 digits of a phone number.
pub fn mask_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    format!("***-***-{}", &digits[digits.len().saturating_sub(4)..])
}

/// At most this many terms per financing plan.
pub const MAX_TERMS: usize = 24;

/// At most this many security questions per account (seed 004 shows a handful):
/// each answer costs an argon2 hash when the account opens.
pub const MAX_SECURITY_QUESTIONS: usize = 5;

/// Account opening, validated.
#[derive(Debug, Clone)]
pub struct AccountInput {
    pub account_type: String,
    /// Minor units.
    pub credit_limit: i64,
    pub interest_rate: Decimal,
    pub risk_rating: String,
    pub preferred_language: Option<String>,
    pub tos_agreement: bool,
    pub payment_protection: bool,
    pub questions: Vec<(i64, QuestionText, String)>,
}

/// The languages a security question may be written in (seed 004's `lang`).
pub const LANGUAGES: [&str; 4] = ["en", "fr", "en-CA", "fr-CA"];

/// A security question's text: the one shown by default, and the same question
/// in other languages when the merchant gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionText {
    pub text: String,
    /// By language tag (one of [`LANGUAGES`]); empty when one text was given.
    pub translations: BTreeMap<String, String>,
}

impl QuestionText {
    /// The text in `lang`: the exact tag, else the same language in another
    /// region (`fr` for `fr-CA`), else the default text.
    pub fn in_language(&self, lang: Option<&str>) -> &str {
        lang.and_then(|l| translation(&self.translations, l)).unwrap_or(&self.text)
    }
}

/// The text for `lang` among `translations`: its exact tag, else the same
/// language in another region.
fn translation<'a>(translations: &'a BTreeMap<String, String>, lang: &str) -> Option<&'a String> {
    let base = |tag: &'a str| tag.split('-').next().unwrap_or(tag);
    let want = lang.split('-').next().unwrap_or(lang);
    translations.get(lang).or_else(|| translations.iter().find(|(k, _)| base(k) == want).map(|(_, v)| v))
}

/// Reads `lang`: one of [`LANGUAGES`], in any letter case.
pub fn parse_language(raw: &str) -> Option<&'static str> {
    LANGUAGES.into_iter().find(|l| l.eq_ignore_ascii_case(raw.replace('_', "-").as_str()))
}

/// A question's `text`: a string, or an object of texts by language
/// (`{"en-CA": "...", "fr-CA": "..."}`), whose default is the one in the
/// account's language, else English, else the first.
fn read_question_text(
    q: &mut Obj<'_>,
    path: &str,
    account_lang: Option<&str>,
    p: &mut Problems,
) -> Option<QuestionText> {
    match q.get("text") {
        Some(Value::Object(map)) => {
            let mut translations = BTreeMap::new();
            for (tag, v) in map {
                let at = format!("{path}.{tag}");
                let Some(lang) = parse_language(tag) else {
                    p.push(at, format!("'{tag}' is not a supported language: en, fr, en-CA or fr-CA."));
                    continue;
                };
                match v.as_str() {
                    Some(s) => {
                        if let Some(t) = required_text(s, &at, 200, p) {
                            translations.insert(lang.to_owned(), t);
                        }
                    }
                    None => p.push(at.clone(), format!("'{at}' must be a string.")),
                }
            }
            if map.is_empty() {
                p.push(path, format!("'{path}' needs at least one language."));
            }
            let text = account_lang
                .and_then(parse_language)
                .and_then(|l| translation(&translations, l))
                .or_else(|| translation(&translations, "en"))
                .or_else(|| translations.values().next())?
                .clone();
            Some(QuestionText { text, translations })
        }
        Some(Value::String(s)) => {
            required_text(s, path, 200, p).map(|text| QuestionText { text, translations: BTreeMap::new() })
        }
        Some(Value::Null) | None => {
            p.push(path, format!("'{path}' is required."));
            None
        }
        Some(_) => {
            p.push(path, format!("'{path}' must be a string, or an object of texts by language."));
            None
        }
    }
}

/// Whom a credit account is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AccountType {
    Consumer,
    Business,
}

impl AccountType {
    pub fn parse(s: &str) -> Option<AccountType> {
        match s {
            "consumer" => Some(AccountType::Consumer),
            "business" => Some(AccountType::Business),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Consumer => "consumer",
            AccountType::Business => "business",
        }
    }
}

impl AccountInput {
    pub fn parse(body: &Value) -> Result<AccountInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let account_type = o.required_string("accountType", &mut p).and_then(|s| match AccountType::parse(s) {
            Some(t) => Some(t.as_str().to_owned()),
            None => {
                p.push("accountType", "'accountType' must be 'consumer' or 'business'.");
                None
            }
        });
        let credit_limit = required_amount(&mut o, "creditLimit", &mut p).and_then(to_minor);
        let rate_value = o.get("accountInterestRate");
        let interest_rate = match rate_value {
            Some(_) => parse_rate(rate_value, "accountInterestRate", &mut p),
            None => {
                p.push("accountInterestRate", "'accountInterestRate' is required.");
                None
            }
        };
        let risk_rating = o.required_string("riskRating", &mut p).and_then(|s| {
            let ok = s.len() == 1 && s.bytes().all(|b| b.is_ascii_uppercase());
            if !ok {
                p.push("riskRating", "'riskRating' must be one capital letter (L low, M medium, H high, ...).");
            }
            ok.then(|| s.to_owned())
        });
        let preferred_language =
            o.string("preferredLanguage", &mut p).and_then(|s| optional_text(s, "preferredLanguage", 35, &mut p));
        let tos_agreement = o.bool("tosAgreement", &mut p).unwrap_or(false);
        let payment_protection = o.bool("paymentProtection", &mut p).unwrap_or(false);
        let mut questions = Vec::new();
        for (i, item) in o.array("securityQuestions", MAX_SECURITY_QUESTIONS, &mut p).into_iter().flatten().enumerate()
        {
            let path = format!("securityQuestions[{i}]");
            let Some(mut q) = Obj::at(item, path.clone(), &mut p) else { continue };
            let id = read_int(&mut q, "id", &mut p);
            let text = read_question_text(&mut q, &format!("{path}.text"), preferred_language.as_deref(), &mut p);
            let answer = q
                .required_string("answer", &mut p)
                .and_then(|s| required_text(s, &format!("{path}.answer"), 100, &mut p));
            q.finish(&mut p);
            match id {
                Some(id) if (1..=99_999).contains(&id) => {
                    if questions.iter().any(|(x, _, _)| *x == id) {
                        p.push(format!("{path}.id"), format!("'{path}.id' is used twice."));
                    }
                    if let (Some(t), Some(a)) = (text, answer) {
                        questions.push((id, t, a));
                    }
                }
                _ => p.push(format!("{path}.id"), format!("'{path}.id' must be a number from 1 to 99999.")),
            }
        }
        o.finish(&mut p);
        match (account_type, credit_limit, interest_rate, risk_rating) {
            (Some(account_type), Some(credit_limit), Some(interest_rate), Some(risk_rating)) => p.check(AccountInput {
                account_type,
                credit_limit,
                interest_rate,
                risk_rating,
                preferred_language,
                tos_agreement,
                payment_protection,
                questions,
            }),
            _ => Err(p),
        }
    }
}

/// How security answers are compared: case and spacing do not matter.
pub fn normalize_answer(answer: &str) -> String {
    answer.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn rates_read_in_exponent_notation_too() {
        let mut p = Problems::new();
        // What JSON serializers write for 0.000001, 0.0001 and 0.5.
        for (sent, rate) in [(json!(1e-06), "0.000001"), (json!(1e-4), "0.0001"), (json!(5e-1), "0.5")] {
            assert_eq!(parse_rate(Some(&sent), "apr", &mut p), Some(d(rate)), "{sent}");
        }
        assert!(p.is_empty());
        assert_eq!(parse_rate(Some(&json!(1e-7)), "apr", &mut p), None, "seven decimals");
        assert_eq!(parse_rate(Some(&json!(1e0)), "apr", &mut p), None, "not below 1");
    }

    #[test]
    fn seed_004_figures_to_the_cent() {
        let apr = d("0.0999");
        assert_eq!(monthly_payment(d("10.50"), apr, 3), d("3.56"));
        assert_eq!(monthly_payment(d("10.50") + d("50.00"), apr, 6), d("10.38"));
        assert_eq!(monthly_payment(d("10.50") + d("49.99"), apr, 12), d("5.32"));
        assert_eq!(monthly_payment(d("10.50"), apr, 6), d("1.80"), "Quebec: no admin fee");
        assert_eq!(monthly_payment(d("100"), Decimal::ZERO, 3), d("33.33"));
        assert_eq!(monthly_payment(d("0.05"), Decimal::ZERO, 2), d("0.03"), "half-up");
    }

    #[test]
    fn amounts() {
        let mut p = Problems::new();
        assert_eq!(parse_amount(&json!(234.45), "a", &mut p), Some(d("234.45")));
        assert_eq!(parse_amount(&json!("10.5"), "a", &mut p), Some(d("10.5")));
        for bad in [json!(0), json!(-1), json!(1.234), json!("x"), json!(true), json!(1e15)] {
            assert!(parse_amount(&bad, "a", &mut p).is_none(), "{bad}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask_email("alan.turing@example.com"), "a***g@example.com");
        assert_eq!(mask_email("a@x.io"), "a***@x.io");
        assert_eq!(mask_phone("+14165552222"), "***-***-2222");
        assert_eq!(normalize_answer("  The   Godfather "), "the godfather");
    }

    #[test]
    fn plans() {
        let p = PlanInput::parse(
            &json!({"planName": "EMP - Regular Interest", "offerCategory": "equal_billing", "apr": 0.0999,
            "terms": [{"term": 6, "adminFee": 50.00}, {"term": 3, "adminFee": 0}]}),
        )
        .unwrap();
        assert_eq!(p.terms, [Term { months: 3, admin_fee: 0 }, Term { months: 6, admin_fee: 5000 }]);
        let e =
            PlanInput::parse(&json!({"planName": "", "apr": 1.5, "terms": [{"term": 0}, {"term": 3, "adminFee": -1}]}))
                .err()
                .unwrap();
        let paths: Vec<_> = e.iter().map(|x| x.path.clone()).collect();
        assert_eq!(paths, ["planName", "offerCategory", "apr", "terms[0].term", "terms[1].adminFee"]);
    }
}
