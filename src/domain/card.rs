//! Cards: the PAN (a secret that can only hold a Luhn-valid number), brand
//! detection from IIN ranges, expiry, and the security code check.

use std::fmt;

use chrono::{Datelike, Utc};
use zeroize::Zeroizing;

use super::text::optional_text;
use super::{Obj, Problems};

/// A primary account number: 12–19 digits, Luhn-valid. Its `Debug` shows only
/// what may be shown (first 6, last 4); it has no `Display` and no `Serialize`,
/// and its digits are wiped from memory when dropped.
pub struct Pan(Zeroizing<String>);

impl Pan {
    /// Spaces and dashes are accepted as separators and removed, and white space
    /// around the number ignored.
    pub fn parse(raw: &str) -> Result<Pan, &'static str> {
        let digits: Zeroizing<String> =
            Zeroizing::new(raw.trim().chars().filter(|c| !matches!(c, ' ' | '-')).collect());
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must contain only digits, spaces and dashes");
        }
        if !(12..=19).contains(&digits.len()) {
            return Err("must be 12 to 19 digits long");
        }
        if !luhn_valid(&digits) {
            return Err("is not a valid card number (check digit)");
        }
        Ok(Pan(digits))
    }

    /// The clear digits, for encryption, fingerprinting and reveal only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    pub fn brand(&self) -> Brand {
        Brand::of(&self.0)
    }

    /// First 6 and last 4 digits, the rest masked: `411111******1111`.
    pub fn masked(&self) -> String {
        mask(self.bin(), self.last4(), self.0.len())
    }
}

/// `bin` + `*` for each hidden digit + `last4`.
pub fn mask(bin: &str, last4: &str, len: usize) -> String {
    format!("{bin}{}{last4}", "*".repeat(len.saturating_sub(10)))
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// The Luhn (mod 10) check.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
    Maestro,
    Unknown,
}

impl Brand {
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Jcb => "jcb",
            Brand::Diners => "diners",
            Brand::UnionPay => "unionpay",
            Brand::Maestro => "maestro",
            Brand::Unknown => "unknown",
        }
    }

    /// The brand of a PAN from its issuer identification number. More specific
    /// ranges are checked before the broader ones they sit in (Discover's
    /// 622126–622925 inside UnionPay's 62, Maestro's 6759 before the generic 67).
    pub fn of(pan: &str) -> Brand {
        let prefix = |n: usize| pan.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
        match () {
            _ if p2 == 34 || p2 == 37 => Brand::Amex,
            _ if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 => Brand::Diners,
            _ if (3528..=3589).contains(&p4) => Brand::Jcb,
            _ if p1 == 4 => Brand::Visa,
            _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Brand::Mastercard,
            _ if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6) => {
                Brand::Discover
            }
            _ if p2 == 62 || p2 == 81 => Brand::UnionPay,
            _ if p2 == 50 || (56..=59).contains(&p2) || p2 == 63 || p2 == 67 => Brand::Maestro,
            _ => Brand::Unknown,
        }
    }

    /// The length of the security code this brand prints.
    pub fn security_code_len(self) -> usize {
        if self == Brand::Amex { 4 } else { 3 }
    }
}

/// A card expiry, valid through the last day of its month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub month: u32,
    pub year: i32,
}

impl Expiry {
    /// Month 1–12; year of 2 digits (20YY) or 4; not before the current month and
    /// at most 50 years ahead.
    pub fn check(month: Option<i64>, year: Option<i64>, prefix: &str, p: &mut Problems) -> Option<Expiry> {
        let mpath = super::input::join(prefix, "expirationMonth");
        let ypath = super::input::join(prefix, "expirationYear");
        let month = month.and_then(|m| {
            let ok = (1..=12).contains(&m);
            if !ok {
                p.push(mpath.clone(), format!("'{mpath}' must be from 1 to 12."));
            }
            ok.then_some(m as u32)
        });
        let year = year.and_then(|y| {
            let full = match y {
                0..=99 => Some(2000 + y),
                1000..=9999 => Some(y),
                _ => None,
            };
            if full.is_none() {
                p.push(ypath.clone(), format!("'{ypath}' must have 2 or 4 digits."));
            }
            full.map(|f| f as i32)
        });
        let (month, year) = (month?, year?);
        let today = Utc::now().date_naive();
        let expired = (year, month) < (today.year(), today.month());
        if expired {
            p.push(ypath.clone(), format!("'{ypath}' is in the past: the card has expired."));
            return None;
        }
        if year > today.year() + 50 {
            p.push(ypath.clone(), format!("'{ypath}' is too far in the future."));
            return None;
        }
        Some(Expiry { month, year })
    }
}

/// A new card, validated. The security code was checked and is not kept.
#[derive(Debug)]
pub struct CardInput {
    pub name: Option<String>,
    pub pan: Pan,
    pub expiry: Expiry,
}

/// Reads an integer field (JSON number, or a numeric string as forms send).
pub fn read_int(o: &mut Obj<'_>, key: &'static str, p: &mut Problems) -> Option<i64> {
    let v = o.get(key)?;
    // A whole number written `5.0` is an integer to JSON Schema too.
    let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64);
    let n = v
        .as_i64()
        .or_else(|| v.as_f64().and_then(whole))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()));
    if n.is_none() {
        let path = o.path(key);
        p.push(path.clone(), format!("'{path}' must be a whole number."));
    }
    n
}

pub fn required_int(o: &mut Obj<'_>, key: &'static str, p: &mut Problems) -> Option<i64> {
    if !o.contains(key) || o.get(key).is_none() {
        let path = o.path(key);
        p.push(path.clone(), format!("'{path}' is required."));
        return None;
    }
    read_int(o, key, p)
}

impl CardInput {
    /// Reads a card object; problems are reported under `prefix` (`` or `paymentMethodsCards[1]`).
    pub fn read(mut o: Obj<'_>, p: &mut Problems) -> Option<CardInput> {
        let name = o.string("name", p).and_then(|s| optional_text(s, &o.path("name"), 100, p));
        let pan_path = o.path("pan");
        let pan = match o.required_string("pan", p) {
            Some(raw) => match Pan::parse(raw) {
                Ok(pan) => Some(pan),
                Err(why) => {
                    p.push(pan_path.clone(), format!("'{pan_path}' {why}."));
                    None
                }
            },
            None => None,
        };
        let month = required_int(&mut o, "expirationMonth", p);
        let year = required_int(&mut o, "expirationYear", p);
        let prefix = o.path("");
        let prefix = prefix.trim_end_matches('.');
        let expiry = Expiry::check(month, year, prefix, p);
        let code_path = o.path("securityCode");
        if let Some(code) = o.string("securityCode", p) {
            let code = Zeroizing::new(code.trim().to_owned());
            let want = pan.as_ref().map(|p| p.brand().security_code_len());
            let digits = !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit());
            match want {
                Some(n) if !digits || code.len() != n => {
                    p.push(code_path.clone(), format!("'{code_path}' must be {n} digits for this card."))
                }
                None if !digits || !(3..=4).contains(&code.len()) => {
                    p.push(code_path.clone(), format!("'{code_path}' must be 3 or 4 digits."))
                }
                _ => {}
            }
        }
        o.finish(p);
        Some(CardInput { name, pan: pan?, expiry: expiry? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_read_however_json_writes_them() {
        let body = serde_json::json!({"a": 12, "b": 12.0, "c": " 7 ", "d": 12.5, "e": "x", "f": 1e300});
        let mut p = Problems::new();
        let mut o = Obj::root(&body, &mut p).unwrap();
        let read: Vec<Option<i64>> =
            ["a", "b", "c", "d", "e", "f"].into_iter().map(|k| read_int(&mut o, k, &mut p)).collect();
        assert_eq!(read, [Some(12), Some(12), Some(7), None, None, None]);
        assert_eq!(p.iter().count(), 3, "12.5, 'x' and 1e300 are each refused");
    }

    /// Appends the Luhn check digit to a partial number.
    fn with_check_digit(partial: &str) -> String {
        (0..10).map(|d| format!("{partial}{d}")).find(|s| luhn_valid(s)).unwrap()
    }

    #[test]
    fn brands_from_iin_ranges() {
        let cases = [
            ("4111111111111111", Brand::Visa),
            ("4012888888881881", Brand::Visa),
            ("4222222222222", Brand::Visa),
            ("5555555555554444", Brand::Mastercard),
            ("5105105105105100", Brand::Mastercard),
            ("2223003122003222", Brand::Mastercard),
            ("378282246310005", Brand::Amex),
            ("371449635398431", Brand::Amex),
            ("6011111111111117", Brand::Discover),
            ("6011000990139424", Brand::Discover),
            ("3530111333300000", Brand::Jcb),
            ("3566002020360505", Brand::Jcb),
            ("30569309025904", Brand::Diners),
            ("38520000023237", Brand::Diners),
            ("36227206271667", Brand::Diners),
            ("6200000000000005", Brand::UnionPay),
            ("6759649826438453", Brand::Maestro),
        ];
        for (pan, brand) in cases {
            let p = Pan::parse(pan).unwrap_or_else(|e| panic!("{pan}: {e}"));
            assert_eq!(p.brand(), brand, "{pan}");
        }
        let generated = [
            ("222100000000000", Brand::Mastercard),
            ("272099999999999", Brand::Mastercard),
            ("272100000000000", Brand::Unknown),
            ("644000000000000", Brand::Discover),
            ("649999999999999", Brand::Discover),
            ("622126000000000", Brand::Discover),
            ("622925999999999", Brand::Discover),
            ("622125999999999", Brand::UnionPay),
            ("622926000000000", Brand::UnionPay),
            ("650000000000000", Brand::Discover),
            ("352800000000000", Brand::Jcb),
            ("358999999999999", Brand::Jcb),
            ("300000000000000", Brand::Diners),
            ("309500000000000", Brand::Diners),
            ("501800000000000", Brand::Maestro),
            ("630400000000000", Brand::Maestro),
            ("100000000000000", Brand::Unknown),
        ];
        for (partial, brand) in generated {
            let pan = with_check_digit(partial);
            assert_eq!(Pan::parse(&pan).unwrap().brand(), brand, "{pan}");
        }
    }

    #[test]
    fn pan_rules() {
        assert!(Pan::parse("4111 1111-1111 1111").is_ok());
        assert!(Pan::parse("444466666655555").is_err(), "seed 003's sample fails Luhn");
        assert!(Pan::parse("4111111111111112").is_err());
        assert!(Pan::parse("41111111111").is_err(), "11 digits");
        assert!(Pan::parse(&with_check_digit(&"4".repeat(19))).is_err(), "20 digits");
        assert!(Pan::parse(&with_check_digit(&"4".repeat(18))).is_ok(), "19 digits");
        assert!(Pan::parse("4111x11111111111").is_err());
        let p = Pan::parse("4111111111111111").unwrap();
        assert_eq!(p.masked(), "411111******1111");
        assert_eq!(format!("{p:?}"), "Pan(411111******1111)");
    }

    #[test]
    fn expiry_rules() {
        let mut p = Problems::new();
        let now = Utc::now().date_naive();
        assert_eq!(
            Expiry::check(Some(i64::from(now.month())), Some(i64::from(now.year())), "", &mut p),
            Some(Expiry { month: now.month(), year: now.year() }),
            "valid through the current month"
        );
        assert_eq!(Expiry::check(Some(1), Some(40), "", &mut p), Some(Expiry { month: 1, year: 2040 }));
        assert!(Expiry::check(Some(13), Some(2040), "", &mut p).is_none());
        assert!(Expiry::check(Some(0), Some(2040), "", &mut p).is_none());
        assert!(Expiry::check(Some(1), Some(2020), "", &mut p).is_none());
        assert!(Expiry::check(Some(1), Some(123), "", &mut p).is_none());
        assert!(Expiry::check(Some(1), Some(2999), "", &mut p).is_none());
    }
}
