//! ISO 4217 currency codes one can be paid in.
//!
//! The list is ISO 4217 List One as amended through 2025, kept here rather than
//! taken from a crate, whose tables lag the amendments (VES refused, XCG and ZWG
//! unknown, withdrawn codes still listed). Left out: codes that are no currency
//! to pay in (precious metals XAU XAG XPD XPT, bond-market units XBA–XBD, XDR,
//! XSU, XUA, the test code XTS and XXX). Withdrawn: ANG (for XCG), CUC, HRK
//! (for EUR), SLL (for SLE), ZWL (for ZWG). When ISO amends the list, change it
//! here and in the test below.

/// Active codes, sorted (searched by bisection).
const ACTIVE: [&str; 165] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD",
    "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP",
    "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD",
    "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK",
    "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR",
    "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS",
    "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF",
    "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Every active code, sorted (the OpenAPI document lists them).
pub fn active_currencies() -> &'static [&'static str] {
    &ACTIVE
}

/// An active ISO 4217 code one can be paid in (upper case, as the standard writes it).
pub fn active_currency(code: &str) -> bool {
    ACTIVE.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_of_codes() {
        assert!(ACTIVE.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(ACTIVE.iter().all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn amendments_through_2025_are_in() {
        for ok in ["CAD", "USD", "EUR", "JPY", "SLE", "VED", "VES", "XCG", "ZWG", "STN", "MRU", "BOV"] {
            assert!(active_currency(ok), "{ok} is active");
        }
        for gone in ["ANG", "CUC", "HRK", "SLL", "ZWL", "VEF", "MRO", "STD", "LTL"] {
            assert!(!active_currency(gone), "{gone} was withdrawn");
        }
        for not_money in ["XAU", "XAG", "XPD", "XPT", "XDR", "XBA", "XSU", "XUA", "XTS", "XXX", "usd", "ABC", ""] {
            assert!(!active_currency(not_money), "{not_money} is no currency to pay in");
        }
    }
}
