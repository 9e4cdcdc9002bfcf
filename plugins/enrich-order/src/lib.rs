//! `enrich-order`: adds the fields downstream sinks key and partition on.
//!
//! For a valid order (run `validate-order` first) it adds:
//! - `amount_cents`: the amount as an exact integer number of cents. The amount's decimal text
//!   is used, never a binary float, so `19.99` becomes `1999`, not `1998`. More than two
//!   decimals are rounded half to even (banker's rounding) and noted in `amount_rounded: true`.
//! - `date`: `YYYY-MM-DD` of the timestamp in UTC, for `dt=` partitions.
//! - `total`: `amount * (1 + tax_rate)`, exact decimal rounded half to even to 2 places.
//! - `currency`: upper-cased.
//! - `pk` (name configurable): the values of the configured fields joined by a separator.
//!
//! Config: `tax_rate` (decimal, default `0`, e.g. `0.2` for 20 %), `pk_fields` (comma-separated,
//! default `user_id,order_id`), `pk_separator` (default `#`), `pk_name` (default `pk`).

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use weir_plugin::{Config, Emitter, Map, Number, Record, Reject, Transform, Value, kind_of};

/// The enrich-order transform.
#[derive(Debug)]
pub struct EnrichOrder {
    tax_multiplier: Decimal,
    pk_fields: Vec<String>,
    pk_separator: String,
    pk_name: String,
}

impl Transform for EnrichOrder {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["tax_rate", "pk_fields", "pk_separator", "pk_name"])?;
        let tax_rate = match config.get("tax_rate") {
            None => Decimal::ZERO,
            Some(raw) => Decimal::from_str_exact(raw.trim())
                .map_err(|e| format!("config `tax_rate`: {raw:?} is not a decimal number: {e}"))?,
        };
        if tax_rate.is_sign_negative() || tax_rate > Decimal::from(10) {
            return Err(format!("config `tax_rate`: {tax_rate} is outside 0..=10 (0.2 means 20 %)"));
        }
        let pk_fields: Vec<String> = match config.get("pk_fields") {
            None => vec!["user_id".into(), "order_id".into()],
            Some(_) => config.list("pk_fields").into_iter().map(String::from).collect(),
        };
        if pk_fields.is_empty() {
            return Err("config `pk_fields`: name at least one field".into());
        }
        Ok(EnrichOrder {
            tax_multiplier: Decimal::ONE + tax_rate,
            pk_fields,
            pk_separator: config.get("pk_separator").unwrap_or("#").to_string(),
            pk_name: config.get("pk_name").unwrap_or("pk").to_string(),
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
        let mut order = record.json_object()?;
        self.enrich(&mut order)?;
        out.emit_json(&order)
    }
}

weir_plugin::export_transform!(EnrichOrder);

impl EnrichOrder {
    /// Adds the derived fields to `order` in place.
    pub fn enrich(&self, order: &mut Map<String, Value>) -> Result<(), Reject> {
        let amount = match order.get("amount") {
            Some(Value::Number(n)) => parse_decimal(n)?,
            Some(other) => {
                return Err(Reject::new(format!("field `amount` must be a number, got {}", kind_of(other))));
            }
            None => return Err(Reject::new("field `amount` is missing")),
        };
        let cents_exact = amount * Decimal::ONE_HUNDRED;
        let cents = cents_exact.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
        let cents_i64: i64 = cents
            .try_into()
            .map_err(|_| Reject::new(format!("field `amount`: {amount} is too large for amount_cents")))?;
        if cents != cents_exact {
            order.insert("amount_rounded".into(), Value::Bool(true));
        }
        order.insert("amount_cents".into(), Value::from(cents_i64));

        let total = (amount * self.tax_multiplier).round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
        order.insert("total".into(), decimal_value(total)?);

        let timestamp = match order.get("timestamp") {
            Some(Value::String(s)) => s,
            _ => return Err(Reject::new("field `timestamp` must be an RFC 3339 string")),
        };
        let at = chrono::DateTime::parse_from_rfc3339(timestamp)
            .map_err(|e| Reject::new(format!("field `timestamp`: {timestamp:?} is not RFC 3339: {e}")))?;
        let date = at.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string();
        order.insert("date".into(), Value::String(date));

        if let Some(Value::String(c)) = order.get_mut("currency") {
            c.make_ascii_uppercase();
        }

        let mut pk = String::new();
        for (i, field) in self.pk_fields.iter().enumerate() {
            if i > 0 {
                pk.push_str(&self.pk_separator);
            }
            match order.get(field) {
                Some(Value::String(s)) if !s.is_empty() => pk.push_str(s),
                Some(Value::Number(n)) => pk.push_str(&n.to_string()),
                Some(Value::Bool(b)) => pk.push_str(if *b { "true" } else { "false" }),
                _ => {
                    return Err(Reject::new(format!(
                        "field `{field}` (a key field for `{}`) must be a non-empty string or a number",
                        self.pk_name
                    )));
                }
            }
        }
        order.insert(self.pk_name.clone(), Value::String(pk));
        Ok(())
    }
}

/// The exact decimal value of a JSON number's text (`19.99`, `1e3`, `2.5E-1`).
fn parse_decimal(n: &Number) -> Result<Decimal, Reject> {
    let text = n.to_string();
    let parsed =
        if text.contains(['e', 'E']) { Decimal::from_scientific(&text) } else { Decimal::from_str_exact(&text) };
    parsed.map_err(|e| Reject::new(format!("field `amount`: {text} is not representable exactly: {e}")))
}

fn decimal_value(d: Decimal) -> Result<Value, Reject> {
    let text = d.normalize().to_string();
    Number::from_str(&text)
        .map(Value::Number)
        .map_err(|e| Reject::new(format!("cannot encode {text} as a JSON number: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::testing::Harness;

    fn enrich(config: &[(&str, &str)], body: &str) -> Value {
        let mut h = Harness::<EnrichOrder>::new(config).unwrap();
        let out = h.run(body).unwrap();
        assert_eq!(out.len(), 1);
        out[0].json()
    }

    const ORDER: &str =
        r#"{"order_id":"o-7","user_id":"u-3","amount":19.99,"currency":"eur","timestamp":"2024-03-01T23:30:00-05:00"}"#;

    #[test]
    fn adds_exact_cents_utc_date_total_currency_and_pk() {
        let v = enrich(&[("tax_rate", "0.2")], ORDER);
        assert_eq!(v["amount_cents"], 1999);
        assert_eq!(v["date"], "2024-03-02", "23:30 at -05:00 is the next day in UTC");
        assert_eq!(v["total"].to_string(), "23.99", "19.99 * 1.2 = 23.988 -> 23.99");
        assert_eq!(v["currency"], "EUR");
        assert_eq!(v["pk"], "u-3#o-7");
        assert!(v.get("amount_rounded").is_none());
    }

    #[test]
    fn cents_never_suffer_float_rounding() {
        // 0.1 + 0.2 style traps: as f64, 1.15 * 100 = 114.99999999999999 and 4.35 * 100 = 434.99999999999994.
        for (amount, cents) in
            [("1.15", 115), ("4.35", 435), ("0.07", 7), ("1e2", 10000), ("123456789.01", 12345678901i64), ("0", 0)]
        {
            let body = ORDER.replace("19.99", amount);
            assert_eq!(enrich(&[], &body)["amount_cents"], cents, "{amount}");
        }
    }

    #[test]
    fn extra_decimals_round_half_to_even_and_are_flagged() {
        let v = enrich(&[], &ORDER.replace("19.99", "0.125"));
        assert_eq!(v["amount_cents"], 12);
        assert_eq!(v["amount_rounded"], true);
        assert_eq!(enrich(&[], &ORDER.replace("19.99", "0.135"))["amount_cents"], 14);
    }

    #[test]
    fn pk_is_configurable() {
        let v = enrich(&[("pk_fields", "currency, order_id"), ("pk_separator", "|"), ("pk_name", "key")], ORDER);
        assert_eq!(v["key"], "EUR|o-7");
        let mut h = Harness::<EnrichOrder>::new(&[("pk_fields", "shop_id")]).unwrap();
        let reason = h.run(ORDER).unwrap_err();
        assert!(reason.reason().contains("field `shop_id`"), "{reason}");
    }

    #[test]
    fn bad_config_is_refused_with_the_key_named() {
        let e = Harness::<EnrichOrder>::new(&[("tax_rate", "twenty")]).err().unwrap();
        assert!(e.starts_with("config `tax_rate`"), "{e}");
        let e = Harness::<EnrichOrder>::new(&[("tax_rate", "-0.1")]).err().unwrap();
        assert!(e.contains("outside"), "{e}");
        let e = Harness::<EnrichOrder>::new(&[("taxrate", "0.1")]).err().unwrap();
        assert!(e.contains("unknown config key(s) taxrate"), "{e}");
    }

    #[test]
    fn rejects_what_it_cannot_enrich() {
        let mut h = Harness::<EnrichOrder>::new(&[]).unwrap();
        assert!(h.run(&ORDER.replace("19.99", "\"19.99\"")).unwrap_err().reason().contains("must be a number"));
        assert!(
            h.run(&ORDER.replace("2024-03-01T23:30:00-05:00", "yesterday")).unwrap_err().reason().contains("timestamp")
        );
    }
}
