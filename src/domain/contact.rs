//! Email addresses and phone numbers: parsed with maintained libraries, held in
//! types that can only contain a valid value.

use std::str::FromStr;

use email_address::{EmailAddress, Options};
use rlibphonenumber::enums::Region;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};

use super::Problems;

/// A syntactically valid address with a dotted domain, as sent (trimmed), plus its
/// lowercase form for case-insensitive matching.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    value: String,
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str, path: &str, p: &mut Problems) -> Option<Email> {
        let t = raw.trim();
        if t.is_empty() {
            return None;
        }
        let opts = Options { minimum_sub_domains: 2, allow_domain_literal: false, allow_display_text: false };
        if t.len() > 254 || EmailAddress::parse_with_options(t, opts).is_err() {
            p.push(path, format!("'{path}' is not a valid email address."));
            return None;
        }
        Some(Email { value: t.to_owned(), normalized: t.to_lowercase() })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// PII stays out of logs: `a***@example.com`.
impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (local, domain) = self.value.split_once('@').unwrap_or(("", ""));
        let first: String = local.chars().take(1).collect();
        write!(f, "Email({first}***@{domain})")
    }
}

/// Lowercase form used for the exact `email` filter.
pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A valid phone number in E.164 (`+14155552671`).
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Numbers in international form (`+44 20 7946 0958`) parse on their own; a
    /// national number (`(415) 555-2671`) needs the country of the customer's
    /// address as `region`.
    pub fn parse(raw: &str, region: Option<&str>, path: &str, p: &mut Problems) -> Option<Phone> {
        let t = raw.trim();
        if t.is_empty() {
            return None;
        }
        let id = region.and_then(|r| Region::from_str(r).ok());
        let parsed = if t.len() <= 40 { PHONE_NUMBER_UTIL.parse(t, id).ok() } else { None };
        match parsed {
            Some(n) if n.is_valid() => Some(Phone(n.format_as(PhoneNumberFormat::E164).into_owned())),
            _ => {
                let hint = if id.is_none() && !t.starts_with('+') {
                    " Give it in international form (+country code) or with an address country."
                } else {
                    ""
                };
                p.push(path, format!("'{path}' is not a valid phone number.{hint}"));
                None
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// PII stays out of logs: only the last 4 digits.
impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Phone(***{})", &self.0[self.0.len().saturating_sub(4)..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let mut p = Problems::new();
        let e = Email::parse(" Company@Mail.com ", "email", &mut p).unwrap();
        assert_eq!(e.as_str(), "Company@Mail.com");
        assert_eq!(e.normalized(), "company@mail.com");
        assert_eq!(format!("{e:?}"), "Email(C***@Mail.com)");
        for bad in ["nope", "a@b", "a@@b.com", "a b@c.com", "<a@b.com>"] {
            assert!(Email::parse(bad, "email", &mut p).is_none(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        let mut p = Problems::new();
        let ph = Phone::parse("+1 415-555-2671", None, "x", &mut p).unwrap();
        assert_eq!(ph.as_str(), "+14155552671");
        assert_eq!(format!("{ph:?}"), "Phone(***2671)");
        assert_eq!(Phone::parse("(416) 555-0199", Some("CA"), "x", &mut p).unwrap().as_str(), "+14165550199");
        assert!(Phone::parse("4165550199", None, "x", &mut p).is_none());
        assert!(Phone::parse("12345678", Some("US"), "x", &mut p).is_none());
        assert!(p.iter().next().unwrap().message.contains("international"));
        // A number in international form keeps its own country whatever the address's.
        assert_eq!(Phone::parse("+33 1 23 45 67 89", Some("US"), "x", &mut p).unwrap().as_str(), "+33123456789");
        assert_eq!(Phone::parse("+44 20 7946 0958", Some("CA"), "x", &mut p).unwrap().as_str(), "+442079460958");
    }
}
