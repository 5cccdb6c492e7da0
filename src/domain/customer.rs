//! A customer as a merchant submits it, validated.

use chrono::{NaiveDate, Utc};
use serde_json::Value;

use super::address::Address;
use super::bank::AchInput;
use super::card::CardInput;
use super::contact::{Email, Phone};
use super::custom::{CustomValues, Declaration, read_values};
use super::provider::{FIELDS as PROVIDER_FIELDS, ProviderInput};
use super::text::{fold, optional_text, required_text};
use super::{Obj, Problems};

/// `active` or `inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CustomerStatus {
    Active,
    Inactive,
}

impl CustomerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Active => "active",
            CustomerStatus::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<CustomerStatus> {
        match s {
            "active" => Some(CustomerStatus::Active),
            "inactive" => Some(CustomerStatus::Inactive),
            _ => None,
        }
    }

    /// A `status` a body or query sent, its problem reported under `status`.
    pub fn read(s: &str, p: &mut Problems) -> Option<CustomerStatus> {
        let status = CustomerStatus::parse(s);
        if status.is_none() {
            p.push("status", "'status' must be 'active' or 'inactive'.");
        }
        status
    }
}

#[derive(Debug, Clone)]
pub struct CustomerInput {
    pub first_name: String,
    pub last_name: String,
    pub company_name: Option<String>,
    pub email: Option<Email>,
    pub mobile_phone: Option<Phone>,
    pub sms_enabled: bool,
    pub use_billing_as_shipping: bool,
    pub billing: Option<Address>,
    pub shipping: Option<Address>,
    pub date_of_birth: Option<NaiveDate>,
    pub preferred_language: Option<String>,
    /// The merchant's own reference (≤ 128 characters), unique per merchant.
    pub external_reference: Option<String>,
    /// What the body says of the merchant's declared custom parameters.
    pub custom: CustomValues,
    /// The representation's `id`, when sent back: an import keeps it for the
    /// customer it creates where it is free; an update checks it names the customer.
    pub id: Option<uuid::Uuid>,
    /// The representation's `status`, when sent back: applied by an import.
    pub status: Option<CustomerStatus>,
}

/// The fields of the customer representation a PUT or PATCH writes.
pub const UPDATABLE: [&str; 12] = [
    "firstName",
    "lastName",
    "companyName",
    "email",
    "mobilePhoneNumber",
    "isMobileNumberSmsNotificationsEnabled",
    "useBillingAsShippingAddress",
    "billingAddress",
    "shippingAddress",
    "dateOfBirth",
    "preferredLanguage",
    "externalReference",
];

/// Fields of the customer representation that a body may carry back (a GET's
/// body sent to PUT, an export line imported) and that writing ignores: the
/// service keeps them. (`id` and `status` are read, see [`CustomerInput`].)
pub const READ_ONLY: [&str; 13] = [
    "merchantId",
    "defaultPaymentMethodId",
    "defaultAchPaymentMethodId",
    "createdOn",
    "modifiedOn",
    "version",
    "lastTransactionDate",
    "transactionsCount",
    "transactionsVolume",
    "lastTransactionAmount",
    "numberOfSubscriptions",
    "cards",
    "achAccounts",
];

/// A create: the customer and the payment methods that come with it (all or nothing).
#[derive(Debug)]
pub struct NewCustomer {
    pub customer: CustomerInput,
    pub cards: Vec<CardInput>,
    pub ach_accounts: Vec<AchInput>,
    /// Seed 002: a payment provider to link, given at the top level of a create.
    pub provider: Option<ProviderInput>,
}

impl NewCustomer {
    /// Whether the body adds cards or bank accounts (which need `payment_methods:write`).
    pub fn brings_methods(&self) -> bool {
        !self.cards.is_empty() || !self.ach_accounts.is_empty()
    }
}

/// At most this many cards, and as many bank accounts, in one create body (each
/// is sealed and fingerprinted in the create's transaction).
pub const MAX_INLINE_METHODS: usize = 10;

impl CustomerInput {
    /// An update body (no payment methods).
    pub fn parse_update(body: &Value, declarations: &[Declaration]) -> Result<CustomerInput, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let input = Self::read(&mut o, declarations, &mut p);
        o.finish(&mut p);
        match input {
            Some(input) => p.check(input),
            None => Err(p),
        }
    }

    /// A create body, with `paymentMethodsCards` and `paymentMethodsAchAccounts`;
    /// a problem in an item is reported under its path (`paymentMethodsCards[1].pan`).
    pub fn parse_create(body: &Value, declarations: &[Declaration]) -> Result<NewCustomer, Problems> {
        Self::parse_line(body, declarations, false)
    }

    /// An import line: a create body, which may also be a line of an export, so
    /// the values of retired parameters it carries are accepted and left as
    /// stored (an import writes active parameters only).
    pub fn parse_import(body: &Value, declarations: &[Declaration]) -> Result<NewCustomer, Problems> {
        Self::parse_line(body, declarations, true)
    }

    fn parse_line(body: &Value, declarations: &[Declaration], import: bool) -> Result<NewCustomer, Problems> {
        let mut p = Problems::new();
        let Some(mut o) = Obj::root(body, &mut p) else { return Err(p) };
        let customer = Self::read(&mut o, declarations, &mut p);
        // Seed 002's provider fields, unless the merchant declared a custom
        // parameter of one of their names before they were reserved.
        let declared = |f: &str| declarations.iter().any(|d| !d.retired && d.name.eq_ignore_ascii_case(f));
        // `null` is absent here as everywhere: sent alone, the fields link nothing.
        let provider = match !import && PROVIDER_FIELDS.iter().any(|f| o.is_set(f) && !declared(f)) {
            true => ProviderInput::read(&mut o, &mut p),
            false => {
                for f in PROVIDER_FIELDS.iter().filter(|f| !import && !declared(f)) {
                    o.get(f);
                }
                None
            }
        };
        if import {
            for d in declarations.iter().filter(|d| d.retired) {
                o.get_dynamic(&d.name);
            }
        }
        let mut cards: Vec<(usize, CardInput)> = Vec::new();
        for (i, item) in o.array("paymentMethodsCards", MAX_INLINE_METHODS, &mut p).into_iter().flatten().enumerate() {
            let path = format!("paymentMethodsCards[{i}]");
            if let Some(card) = Obj::at(item, path.clone(), &mut p).and_then(|c| CardInput::read(c, &mut p)) {
                if let Some((first, _)) = cards.iter().find(|(_, c)| c.pan.expose() == card.pan.expose()) {
                    p.push(
                        format!("{path}.pan"),
                        format!("'{path}.pan' is the same card as paymentMethodsCards[{first}]."),
                    );
                }
                cards.push((i, card));
            }
        }
        let mut ach_accounts: Vec<(usize, AchInput)> = Vec::new();
        for (i, item) in
            o.array("paymentMethodsAchAccounts", MAX_INLINE_METHODS, &mut p).into_iter().flatten().enumerate()
        {
            let path = format!("paymentMethodsAchAccounts[{i}]");
            if let Some(ach) = Obj::at(item, path.clone(), &mut p).and_then(|a| AchInput::read(a, &mut p)) {
                let same = |other: &AchInput| {
                    other.routing_number == ach.routing_number
                        && matches!((&other.account_number, &ach.account_number), (Some(a), Some(b)) if a.expose() == b.expose())
                };
                if let Some((first, _)) = ach_accounts.iter().find(|(_, other)| same(other)) {
                    p.push(
                        format!("{path}.accountNumber"),
                        format!("'{path}.accountNumber' is the same account as paymentMethodsAchAccounts[{first}]."),
                    );
                }
                ach_accounts.push((i, ach));
            }
        }
        o.finish(&mut p);
        match customer {
            Some(customer) => p.check(NewCustomer {
                customer,
                cards: cards.into_iter().map(|(_, c)| c).collect(),
                ach_accounts: ach_accounts.into_iter().map(|(_, a)| a).collect(),
                provider,
            }),
            None => Err(p),
        }
    }

    fn read(o: &mut Obj<'_>, declarations: &[Declaration], p: &mut Problems) -> Option<CustomerInput> {
        let first_name = o.required_string("firstName", p).and_then(|s| required_text(s, "firstName", 100, p));
        let last_name = o.required_string("lastName", p).and_then(|s| required_text(s, "lastName", 100, p));
        let company_name = o.string("companyName", p).and_then(|s| optional_text(s, "companyName", 200, p));
        let email = o.string("email", p).and_then(|s| Email::parse(s, "email", p));
        let sms_enabled = o.bool("isMobileNumberSmsNotificationsEnabled", p).unwrap_or(false);
        let use_billing_as_shipping = o.bool("useBillingAsShippingAddress", p).unwrap_or(false);
        let billing = o.object("billingAddress", p).map(|a| Address::parse(a, p)).filter(|a| !a.is_empty());
        let shipping = o.object("shippingAddress", p).map(|a| Address::parse(a, p)).filter(|a| !a.is_empty());
        // A national phone number is read in the country of the customer's address.
        let region = billing.as_ref().or(shipping.as_ref()).and_then(|a| a.country.as_deref());
        let mobile_phone =
            o.string("mobilePhoneNumber", p).and_then(|s| Phone::parse(s, region, "mobilePhoneNumber", p));
        if sms_enabled && mobile_phone.is_none() && !p.iter().any(|x| x.path == "mobilePhoneNumber") {
            p.push(
                "isMobileNumberSmsNotificationsEnabled",
                "'isMobileNumberSmsNotificationsEnabled' requires a 'mobilePhoneNumber'.",
            );
        }
        let date_of_birth = o.string("dateOfBirth", p).and_then(|s| parse_date_of_birth(s, "dateOfBirth", p));
        let preferred_language =
            o.string("preferredLanguage", p).and_then(|s| parse_language(s, "preferredLanguage", p));
        let external_reference =
            o.string("externalReference", p).and_then(|s| optional_text(s, "externalReference", 128, p));
        let custom = read_values(o, declarations, p);
        let id = o.string("id", p).and_then(|s| match uuid::Uuid::parse_str(s) {
            Ok(id) => Some(id),
            Err(_) => {
                p.push("id", "'id' must be a UUID.");
                None
            }
        });
        let status = o.string("status", p).and_then(|s| CustomerStatus::read(s, p));
        for key in READ_ONLY {
            o.get(key);
        }
        Some(CustomerInput {
            first_name: first_name?,
            last_name: last_name?,
            company_name,
            email,
            mobile_phone,
            sms_enabled,
            use_billing_as_shipping,
            billing,
            shipping,
            date_of_birth,
            preferred_language,
            external_reference,
            custom,
            id,
            status,
        })
    }

    /// Words of the names, folded: what a `search` word must be a prefix of.
    pub fn search_names(&self) -> String {
        let mut s = fold(&self.first_name);
        for part in [Some(self.last_name.as_str()), self.company_name.as_deref()].into_iter().flatten() {
            let f = fold(part);
            if !f.is_empty() {
                s.push(' ');
                s.push_str(&f);
            }
        }
        s
    }

    /// Email and phone, lowercase: what a `search` word may be any part of.
    pub fn search_contacts(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.email {
            s.push_str(e.normalized());
        }
        if let Some(ph) = &self.mobile_phone {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(ph.as_str());
        }
        s
    }
}

pub fn parse_date_of_birth(raw: &str, path: &str, p: &mut Problems) -> Option<NaiveDate> {
    let Some(date) = parse_date(raw) else {
        p.push(path, format!("'{path}' must be a date in the form YYYY-MM-DD."));
        return None;
    };
    let today = Utc::now().date_naive();
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date");
    if date > today || date < earliest {
        p.push(path, format!("'{path}' must be between 1900-01-01 and today."));
        return None;
    }
    Some(date)
}

/// A strict `YYYY-MM-DD` (chrono alone also takes `2020-1-5`).
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

fn parse_language(raw: &str, path: &str, p: &mut Problems) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    match language_tags::LanguageTag::parse(t) {
        Ok(tag) if t.len() <= 35 && tag.validate().is_ok() => Some(tag.to_string()),
        _ => {
            p.push(path, format!("'{path}' must be a BCP 47 language tag such as 'en-CA'."));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(p: &Problems) -> Vec<String> {
        p.iter().map(|x| x.path.clone()).collect()
    }

    #[test]
    fn seed_sample_body_is_read() {
        let body = json!({
            "firstName": "First", "lastName": "Last", "companyName": "Company Name",
            "email": "Company@mail.com", "mobilePhoneNumber": "+1 416 555 0199",
            "isMobileNumberSmsNotificationsEnabled": true, "useBillingAsShippingAddress": false,
            "billingAddress": {"line1": "55 University Ave", "city": "Toronto", "state": "on", "postalCode": "m5j2h7", "country": "ca"},
            "shippingAddress": null, "paymentMethodsCards": [], "paymentMethodsAchAccounts": null
        });
        let c = CustomerInput::parse_create(&body, &[]).unwrap_or_else(|p| panic!("{:?}", paths(&p))).customer;
        assert_eq!(c.billing.as_ref().unwrap().postal_code.as_deref(), Some("M5J 2H7"));
        assert_eq!(c.search_names(), "first last company name");
        assert_eq!(c.search_contacts(), "company@mail.com +14165550199");
    }

    #[test]
    fn all_problems_are_reported() {
        let body = json!({"firstName": "", "lastName": 3, "email": "x", "billingAddress": {"country": "ZZ", "bogus": 1}, "extra": true});
        let p = CustomerInput::parse_update(&body, &[]).err().unwrap();
        assert_eq!(
            paths(&p),
            ["firstName", "lastName", "email", "billingAddress.country", "billingAddress.bogus", "extra"]
        );
    }

    #[test]
    fn update_does_not_take_payment_methods() {
        let body = json!({"firstName": "a", "lastName": "b", "paymentMethodsCards": []});
        let p = CustomerInput::parse_update(&body, &[]).err().unwrap();
        assert!(p.only_unknown_fields());
    }

    #[test]
    fn dates() {
        assert!(parse_date("2020-01-05").is_some());
        assert!(parse_date("2020-1-5").is_none());
        assert!(parse_date("2020-02-30").is_none());
        let mut p = Problems::new();
        assert!(parse_date_of_birth("1899-12-31", "d", &mut p).is_none());
        assert!(parse_date_of_birth("2999-01-01", "d", &mut p).is_none());
    }
}
