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
        if sum % 10 != 0 {
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
        let d: Zeroizing<String> = Zeroizing::new(raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect());
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
        let acct_path = o.path("accountNumber");
        let account_number = o.string("accountNumber", p).filter(|s| !s.trim().is_empty()).and_then(|s| {
            let d = SecretDigits::parse(s, 4, 17);
            if d.is_none() {
                p.push(acct_path.clone(), format!("'{acct_path}' must be 4 to 17 digits."));
            }
            d
        });
        let routing_path = o.path("routingNumber");
        let routing_number = o.required_string("routingNumber", p).and_then(|s| match RoutingNumber::parse(s) {
            Ok(r) => Some(r),
            Err(why) => {
                p.push(routing_path.clone(), format!("'{routing_path}' {why}."));
                None
            }
        });
        let type_path = o.path("accountType");
        let account_type = required_int(&mut o, "accountType", p).and_then(|v| check_account_type(v, &type_path, p));
        let holder_path = o.path("accountHolderType");
        let account_holder_type =
            required_int(&mut o, "accountHolderType", p).and_then(|v| check_holder_type(v, &holder_path, p));
        let tax_path = o.path("taxId");
        let tax_id = o.string("taxId", p).filter(|s| !s.trim().is_empty()).and_then(|s| {
            let d = SecretDigits::parse(s, 9, 9);
            if d.is_none() {
                p.push(tax_path.clone(), format!("'{tax_path}' must be 9 digits (dashes allowed)."));
            }
            d
        });
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
