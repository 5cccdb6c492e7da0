//! Bank accounts for ACH/EFT: the ABA routing number, and the account number and
//! tax id, which are secrets.

use std::fmt;

use zeroize::Zeroizing;

use super::card::required_int;
use super::text::required_text;
use super::{Obj, Problems};

/// A nine-digit ABA routing transit number whose checksum holds:
/// 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingNumber(String);

impl RoutingNumber {
    pub fn parse(raw: &str) -> Result<RoutingNumber, &'static str> {
        let t = raw.trim();
        if t.len() != 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be 9 digits");
        }
        let d: Vec<u32> = t.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
        if !sum.is_multiple_of(10) {
            return Err("is not a valid ABA routing number (checksum)");
        }
        Ok(RoutingNumber(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Digits that must never be shown or logged in full (an account number, a tax id).
pub struct SecretDigits(Zeroizing<String>);

impl SecretDigits {
    /// `raw` without spaces and dashes, when it is `min..=max` digits.
    fn parse(raw: &str, min: usize, max: usize) -> Option<SecretDigits> {
        let d: Zeroizing<String> = Zeroizing::new(raw.trim().chars().filter(|c| !matches!(c, ' ' | '-')).collect());
        let ok = (min..=max).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit());
        ok.then_some(SecretDigits(d))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }
}

impl fmt::Debug for SecretDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigits(****{})", self.last4())
    }
}

/// 1 checking, 2 savings.
pub fn check_account_type(v: i64, path: &str, p: &mut Problems) -> Option<i64> {
    let ok = matches!(v, 1 | 2);
    if !ok {
        p.push(path, format!("'{path}' must be 1 (checking) or 2 (savings)."));
    }
    ok.then_some(v)
}

/// 1 business, 2 personal.
pub fn check_holder_type(v: i64, path: &str, p: &mut Problems) -> Option<i64> {
    let ok = matches!(v, 1 | 2);
    if !ok {
        p.push(path, format!("'{path}' must be 1 (business) or 2 (personal)."));
    }
    ok.then_some(v)
}

/// A new bank account, validated.
#[derive(Debug)]
pub struct AchInput {
    pub name: String,
    pub account_number: Option<SecretDigits>,
    pub routing_number: RoutingNumber,
    pub account_type: i64,
    pub account_holder_type: i64,
    pub tax_id: Option<SecretDigits>,
}

impl AchInput {
    pub fn read(mut o: Obj<'_>, p: &mut Problems) -> Option<AchInput> {
        let name_path = o.path("name");
        let name = o.required_string("name", p).and_then(|s| required_text(s, &name_path, 100, p));
        let account_number = o.string("accountNumber", p).and_then(|s| account_number(s, &o.path("accountNumber"), p));
        let routing_number =
            o.required_string("routingNumber", p).and_then(|s| routing(s, &o.path("routingNumber"), p));
        let type_path = o.path("accountType");
        let account_type = required_int(&mut o, "accountType", p).and_then(|v| check_account_type(v, &type_path, p));
        let holder_path = o.path("accountHolderType");
        let account_holder_type =
            required_int(&mut o, "accountHolderType", p).and_then(|v| check_holder_type(v, &holder_path, p));
        let tax_id = o.string("taxId", p).and_then(|s| tax_id(s, &o.path("taxId"), p));
        o.finish(p);
        Some(AchInput {
            name: name?,
            account_number,
            routing_number: routing_number?,
            account_type: account_type?,
            account_holder_type: account_holder_type?,
            tax_id,
        })
    }
}

/// An account number: 4 to 17 digits (blank is none).
fn account_number(s: &str, path: &str, p: &mut Problems) -> Option<SecretDigits> {
    if s.trim().is_empty() {
        return None;
    }
    let d = SecretDigits::parse(s, 4, 17);
    if d.is_none() {
        p.push(path, format!("'{path}' must be 4 to 17 digits."));
    }
    d
}

fn routing(s: &str, path: &str, p: &mut Problems) -> Option<RoutingNumber> {
    RoutingNumber::parse(s).map_err(|why| p.push(path, format!("'{path}' {why}."))).ok()
}

/// A tax id: 9 digits, dashes allowed (blank is none).
fn tax_id(s: &str, path: &str, p: &mut Problems) -> Option<SecretDigits> {
    if s.trim().is_empty() {
        return None;
    }
    let d = SecretDigits::parse(s, 9, 9);
    if d.is_none() {
        p.push(path, format!("'{path}' must be 9 digits (dashes allowed)."));
    }
    d
}

/// The bank details an update of a bank account changes (seed 000, "update
/// ACH details"); a field left out stays as it is.
#[derive(Debug, Default)]
pub struct BankDetailsChange {
    pub routing_number: Option<RoutingNumber>,
    pub account_number: Option<SecretDigits>,
    /// `Some(None)`: the tax id is removed (`null`).
    pub tax_id: Option<Option<SecretDigits>>,
}

impl BankDetailsChange {
    pub fn read(o: &mut Obj<'_>, p: &mut Problems) -> BankDetailsChange {
        let mut c = BankDetailsChange::default();
        if o.contains("routingNumber") {
            c.routing_number = o.required_string("routingNumber", p).and_then(|s| routing(s, "routingNumber", p));
        }
        if o.contains("accountNumber") {
            c.account_number =
                o.required_string("accountNumber", p).and_then(|s| account_number(s, "accountNumber", p));
            if c.account_number.is_none() && !p.iter().any(|x| x.path == "accountNumber") {
                p.push("accountNumber", "'accountNumber' cannot be removed; delete the payment method instead.");
            }
        }
        if o.contains("taxId") {
            c.tax_id = Some(o.string("taxId", p).and_then(|s| tax_id(s, "taxId", p)));
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.routing_number.is_none() && self.account_number.is_none() && self.tax_id.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_numbers() {
        for good in ["011000015", "021000021", "026009593", "121000358", "111000025"] {
            assert!(RoutingNumber::parse(good).is_ok(), "{good}");
        }
        for bad in ["021000022", "12345678", "1234567890", "02100002a", ""] {
            assert!(RoutingNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_digits_are_masked_in_debug() {
        let d = SecretDigits::parse("000123456789", 4, 17).unwrap();
        assert_eq!(format!("{d:?}"), "SecretDigits(****6789)");
        assert_eq!(d.last4(), "6789");
        assert!(SecretDigits::parse("123", 4, 17).is_none());
        assert!(SecretDigits::parse("12-34-56-78-9", 9, 9).is_some());
    }
}
