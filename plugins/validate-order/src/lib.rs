//! `validate-order`: rejects orders that downstream stages cannot trust.
//!
//! Checks, each rejecting with a reason that names the field:
//! - `order_id`, `user_id`: non-empty strings;
//! - `amount`: a JSON number >= 0;
//! - `currency`: an ISO 4217 code (three letters, any case; `usd` is accepted, `XYZ` is not);
//! - `timestamp`: an RFC 3339 date-time (`2024-05-01T12:00:00Z`, `...+02:00`).
//!
//! Valid orders pass through unchanged. Config: none (unknown keys are refused).

use weir_plugin::{Config, Emitter, Map, Record, Reject, Transform, Value, kind_of};

/// Active ISO 4217 currency codes (plus the precious-metal and special codes that appear on
/// invoices).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF",
    "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU",
    "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
];

/// The validate-order transform (stateless).
pub struct ValidateOrder;

impl Transform for ValidateOrder {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&[])?;
        Ok(ValidateOrder)
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
        let order = record.json_object()?;
        validate(&order)?;
        out.emit(record.body);
        Ok(())
    }
}

weir_plugin::export_transform!(ValidateOrder);

/// Checks one order object; the error names the first offending field.
pub fn validate(order: &Map<String, Value>) -> Result<(), Reject> {
    non_empty_string(order, "order_id")?;
    non_empty_string(order, "user_id")?;
    match order.get("amount") {
        None => return Err(missing("amount")),
        Some(Value::Number(n)) => {
            let text = n.to_string();
            // Exact on the number's text (serde_json keeps it with `arbitrary_precision`):
            // negative unless every mantissa digit is zero (`-0.0` is zero).
            let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
            if mantissa.starts_with('-') && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
                return Err(Reject::new(format!("field `amount` must be >= 0, got {text}")));
            }
        }
        Some(other) => {
            return Err(Reject::new(format!("field `amount` must be a number, got {}", kind_of(other))));
        }
    }
    let currency = string_field(order, "currency")?;
    let upper = currency.to_ascii_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(Reject::new(format!("field `currency` must be a three-letter ISO 4217 code, got {currency:?}")));
    }
    if ISO_4217.binary_search(&upper.as_str()).is_err() {
        return Err(Reject::new(format!("field `currency`: {currency:?} is not an ISO 4217 currency code")));
    }
    let timestamp = string_field(order, "timestamp")?;
    if let Err(e) = chrono::DateTime::parse_from_rfc3339(timestamp) {
        return Err(Reject::new(format!(
            "field `timestamp` must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, got {timestamp:?} ({e})"
        )));
    }
    Ok(())
}

fn missing(field: &str) -> Reject {
    Reject::new(format!("field `{field}` is missing"))
}

fn string_field<'a>(order: &'a Map<String, Value>, field: &str) -> Result<&'a str, Reject> {
    match order.get(field) {
        None => Err(missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Reject::new(format!("field `{field}` must be a string, got {}", kind_of(other)))),
    }
}

fn non_empty_string<'a>(order: &'a Map<String, Value>, field: &str) -> Result<&'a str, Reject> {
    let s = string_field(order, field)?;
    if s.trim().is_empty() {
        return Err(Reject::new(format!("field `{field}` must be a non-empty string")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::testing::Harness;

    const GOOD: &str =
        r#"{"order_id":"o-1","user_id":"u-1","amount":19.99,"currency":"usd","timestamp":"2024-05-01T12:00:00+02:00"}"#;

    fn reason(body: &str) -> String {
        let mut h = Harness::<ValidateOrder>::new(&[]).unwrap();
        h.run(body).expect_err("should reject").reason().to_string()
    }

    fn with(field: &str, value: Value) -> String {
        let mut v: Value = serde_json::from_str(GOOD).unwrap();
        v[field] = value;
        v.to_string()
    }

    #[test]
    fn the_code_list_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_valid_order_passes_unchanged() {
        let mut h = Harness::<ValidateOrder>::new(&[]).unwrap();
        let out = h.run(GOOD).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body, GOOD);
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(reason(&with("order_id", "".into())), "field `order_id` must be a non-empty string");
        assert_eq!(reason(&with("user_id", 7.into())), "field `user_id` must be a string, got number");
        assert_eq!(reason(r#"{"order_id":"o","user_id":"u"}"#), "field `amount` is missing");
        assert_eq!(reason(&with("amount", "12".into())), "field `amount` must be a number, got string");
        assert_eq!(reason(&with("amount", serde_json::json!(-0.01))), "field `amount` must be >= 0, got -0.01");
        assert!(reason(&with("currency", "US".into())).contains("three-letter ISO 4217"));
        assert!(reason(&with("currency", "XYZ".into())).contains("\"XYZ\" is not an ISO 4217"));
        assert!(
            reason(&with("timestamp", "2024-05-01 12:00".into())).starts_with("field `timestamp` must be an RFC 3339")
        );
        assert!(reason("[1,2]").contains("must be a JSON object, got array"));
        assert!(reason("{").starts_with("body is not valid JSON"));
    }

    #[test]
    fn zero_and_negative_zero_amounts_are_valid() {
        let mut h = Harness::<ValidateOrder>::new(&[]).unwrap();
        assert!(h.run(&with("amount", serde_json::json!(0))).is_ok());
        assert!(h.run(&with("amount", serde_json::from_str("-0.0").unwrap())).is_ok());
    }

    #[test]
    fn unknown_config_is_refused() {
        let err = Harness::<ValidateOrder>::new(&[("strict", "yes")]).err().unwrap();
        assert!(err.contains("unknown config key(s) strict"), "{err}");
    }
}
