//! Postal addresses: ISO 3166-1 country codes, state/province codes, and postal
//! codes normalized for the countries we can check (US ZIP and ZIP+4, Canada).

use super::text::optional_text;
use super::{Obj, Problems};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    /// ISO 3166-2 subdivision code without the country (`ON`, `QC`, `CA`), uppercase.
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, uppercase.
    pub country: Option<String>,
}

/// The field names of an address, in wire order.
pub const ADDRESS_FIELDS: [&str; 6] = ["line1", "line2", "city", "state", "postalCode", "country"];

impl Address {
    pub fn parse(mut o: Obj<'_>, p: &mut Problems) -> Address {
        let line1 = o.string("line1", p).and_then(|s| optional_text(s, &o.path("line1"), 200, p));
        let line2 = o.string("line2", p).and_then(|s| optional_text(s, &o.path("line2"), 200, p));
        let city = o.string("city", p).and_then(|s| optional_text(s, &o.path("city"), 100, p));
        let state = o.string("state", p).and_then(|s| parse_state(s, &o.path("state"), p));
        let country = o.string("country", p).and_then(|s| parse_country(s, &o.path("country"), p));
        let postal_code =
            o.string("postalCode", p).and_then(|s| parse_postal_code(s, country.as_deref(), &o.path("postalCode"), p));
        o.finish(p);
        Address { line1, line2, city, state, postal_code, country }
    }

    pub fn is_empty(&self) -> bool {
        *self == Address::default()
    }
}

fn parse_country(raw: &str, path: &str, p: &mut Problems) -> Option<String> {
    let t = raw.trim().to_ascii_uppercase();
    if t.is_empty() {
        return None;
    }
    if t.len() == 2 && celes::Country::from_alpha2(&t).is_ok() {
        Some(t)
    } else {
        p.push(path, format!("'{path}' must be an ISO 3166-1 alpha-2 country code such as 'CA' or 'US'."));
        None
    }
}

fn parse_state(raw: &str, path: &str, p: &mut Problems) -> Option<String> {
    let t = raw.trim().to_ascii_uppercase();
    if t.is_empty() {
        return None;
    }
    if (1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Some(t)
    } else {
        p.push(
            path,
            format!("'{path}' must be a state or province code of 1 to 3 letters or digits, such as 'ON' or 'NY'."),
        );
        None
    }
}

/// US: `12345` or `12345-6789`; Canada: `A1A 1A1`; elsewhere up to 12 letters,
/// digits, spaces and dashes, uppercased.
pub fn parse_postal_code(raw: &str, country: Option<&str>, path: &str, p: &mut Problems) -> Option<String> {
    let t = raw.trim().to_ascii_uppercase();
    if t.is_empty() {
        return None;
    }
    let compact: String = t.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let out = match country {
        Some("US") => match compact.len() {
            5 | 9 if compact.bytes().all(|b| b.is_ascii_digit()) => {
                Some(if compact.len() == 5 { compact } else { format!("{}-{}", &compact[..5], &compact[5..]) })
            }
            _ => None,
        },
        Some("CA") => {
            let b = compact.as_bytes();
            let shape = b.len() == 6
                && b.iter().enumerate().all(
                    |(i, c)| {
                        if i % 2 == 0 { c.is_ascii_alphabetic() } else { c.is_ascii_digit() }
                    },
                );
            shape.then(|| format!("{} {}", &compact[..3], &compact[3..]))
        }
        _ => (t.len() <= 12
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
            && !compact.is_empty())
        .then_some(t),
    };
    if out.is_none() {
        let expected = match country {
            Some("US") => "a US ZIP code (12345 or 12345-6789)",
            Some("CA") => "a Canadian postal code (A1A 1A1)",
            _ => "at most 12 letters, digits, spaces or dashes",
        };
        p.push(path, format!("'{path}' must be {expected}."));
    }
    out
}

/// The form used by the exact `postalCode` filter: uppercase, no spaces or dashes,
/// so `m5j 2h7` finds `M5J 2H7`.
pub fn postal_key(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '-')).flat_map(char::to_uppercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postal_codes() {
        let mut p = Problems::new();
        assert_eq!(parse_postal_code("m5j2h7", Some("CA"), "x", &mut p).as_deref(), Some("M5J 2H7"));
        assert_eq!(parse_postal_code("123456789", Some("US"), "x", &mut p).as_deref(), Some("12345-6789"));
        assert_eq!(parse_postal_code("SW1A 1AA", Some("GB"), "x", &mut p).as_deref(), Some("SW1A 1AA"));
        assert!(parse_postal_code("1234", Some("US"), "x", &mut p).is_none());
        assert!(parse_postal_code("M5J 2H", Some("CA"), "x", &mut p).is_none());
        assert!(parse_postal_code("<script>", None, "x", &mut p).is_none());
        assert_eq!(postal_key("m5j 2h7"), "M5J2H7");
    }

    #[test]
    fn countries_and_states() {
        let mut p = Problems::new();
        assert_eq!(parse_country("ca", "c", &mut p).as_deref(), Some("CA"));
        assert!(parse_country("XX", "c", &mut p).is_none());
        assert!(parse_country("CAN", "c", &mut p).is_none());
        assert_eq!(parse_state("qc", "s", &mut p).as_deref(), Some("QC"));
        assert!(parse_state("Ontario", "s", &mut p).is_none());
    }
}
