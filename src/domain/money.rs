//! Money on the wire: a JSON number with at most 2 decimals, held as integer minor units.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Serialize, Serializer};

/// The largest amount one purchase or refund may carry, in minor units
/// (999,999,999,999.99).
pub const MAX_AMOUNT: i64 = 100_000_000_000_000 - 1;

/// The bound of a customer's transaction volume either way, in minor units
/// (9,999,999,999,999.99): a purchase or refund that would carry it past is
/// refused. Sums stay exact in 64 bits, and every amount shown has at most 15
/// significant digits, which a JSON number (an IEEE double) carries exactly.
pub const MAX_VOLUME: i64 = 1_000_000_000_000_000 - 1;

/// The exact value a JSON number's text says, in plain (`0.0999`) or exponent
/// (`1e-06`, which serializers write for small values) notation.
pub fn decimal_from_text(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text).or_else(|_| Decimal::from_scientific(text)).ok()
}

/// An amount in minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub i64);

impl Money {
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

impl Serialize for Money {
    /// The shortest decimal that round-trips, so 65951 cents prints as `659.51`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_decimal().to_f64().unwrap_or(0.0))
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some("A decimal amount with at most 2 decimals."))
            .examples([serde_json::json!(659.51)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_two_decimals_exactly() {
        assert_eq!(serde_json::to_string(&Money(65951)).unwrap(), "659.51");
        assert_eq!(serde_json::to_string(&Money(100000)).unwrap(), "1000.0");
        assert_eq!(serde_json::to_string(&Money(0)).unwrap(), "0.0");
        assert_eq!(serde_json::to_string(&Money(-5)).unwrap(), "-0.05");
    }
}
