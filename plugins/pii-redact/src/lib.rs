//! `pii-redact`: masks personal data in every string of a record, however deeply nested.
//!
//! - e-mail addresses keep their first character and domain: `jane.doe@example.com` ->
//!   `j***@example.com`;
//! - card numbers: runs of 13-19 digits, optionally grouped by single spaces or dashes, that
//!   pass the Luhn check, keep only their last four digits: `4111 1111 1111 1111` ->
//!   `************1111`. Digit runs that fail Luhn (order numbers, phone numbers) are left alone.
//!
//! Config: `skip_fields` (comma-separated top-level fields to leave untouched, e.g. ids).

use regex_lite::Regex;
use weir_plugin::{Config, Emitter, Record, Reject, Transform, Value};

/// The pii-redact transform.
pub struct PiiRedact {
    email: Regex,
    card: Regex,
    skip_fields: Vec<String>,
}

impl Transform for PiiRedact {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["skip_fields"])?;
        Ok(PiiRedact {
            email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
                .map_err(|e| e.to_string())?,
            card: Regex::new(r"\d(?:[ \-]?\d){12,18}").map_err(|e| e.to_string())?,
            skip_fields: config.list("skip_fields").into_iter().map(String::from).collect(),
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
        let mut value: Value = record.json()?;
        match &mut value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if !self.skip_fields.iter().any(|s| s == key) {
                        self.redact(field);
                    }
                }
            }
            other => self.redact(other),
        }
        out.emit_json(&value)
    }
}

weir_plugin::export_transform!(PiiRedact);

impl PiiRedact {
    /// Redacts every string inside `value`.
    pub fn redact(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(masked) = self.redact_str(s) {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }

    /// The masked string, or `None` if nothing in it is personal data.
    pub fn redact_str(&self, s: &str) -> Option<String> {
        let has_at = s.contains('@');
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        if !has_at && digits < 13 {
            return None; // the common case: no regex work at all
        }
        let mut changed = false;
        let mut text = s.to_string();
        if has_at {
            let replaced = self.email.replace_all(&text, |c: &regex_lite::Captures<'_>| {
                let m = &c[0];
                let (local, domain) = m.split_once('@').unwrap_or((m, ""));
                let first = local.chars().next().map(String::from).unwrap_or_default();
                format!("{first}***@{domain}")
            });
            if replaced != text {
                changed = true;
                text = replaced.into_owned();
            }
        }
        if digits >= 13 {
            let replaced = self.card.replace_all(&text, |c: &regex_lite::Captures<'_>| {
                let m = &c[0];
                let ds: Vec<u8> = m.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
                if (13..=19).contains(&ds.len()) && luhn_valid(&ds) {
                    let last4: String = ds[ds.len() - 4..].iter().map(|d| char::from(b'0' + d)).collect();
                    format!("{}{last4}", "*".repeat(ds.len() - 4))
                } else {
                    m.to_string()
                }
            });
            if replaced != text {
                changed = true;
                text = replaced.into_owned();
            }
        }
        changed.then_some(text)
    }
}

/// The Luhn checksum over decimal digits (values 0-9).
pub fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::testing::Harness;

    fn run(config: &[(&str, &str)], body: &str) -> Value {
        Harness::<PiiRedact>::new(config).unwrap().run(body).unwrap()[0].json()
    }

    #[test]
    fn masks_emails_and_luhn_valid_cards_anywhere() {
        let v = run(
            &[],
            r#"{"note":"mail jane.doe@example.co.uk or pay 4111 1111 1111 1111","nested":{"list":["x-5500-0000-0000-0004-y"]},"n":12}"#,
        );
        assert_eq!(v["note"], "mail j***@example.co.uk or pay ************1111");
        assert_eq!(v["nested"]["list"][0], "x-************0004-y");
        assert_eq!(v["n"], 12);
    }

    #[test]
    fn leaves_non_luhn_digit_runs_and_short_numbers_alone() {
        let v = run(&[], r#"{"order":"4111111111111112","phone":"+1 415 555 0100"}"#);
        assert_eq!(v["order"], "4111111111111112");
        assert_eq!(v["phone"], "+1 415 555 0100");
    }

    #[test]
    fn card_lengths_13_to_19() {
        let p = Harness::<PiiRedact>::new(&[]).unwrap().plugin().redact_str("4222222222222").map(|s| s.len());
        assert_eq!(p, Some(13), "13-digit Visa test number is masked");
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }

    #[test]
    fn skip_fields_are_untouched() {
        let v = run(&[("skip_fields", "contact")], r#"{"contact":"a@b.io","other":"a@b.io"}"#);
        assert_eq!(v["contact"], "a@b.io");
        assert_eq!(v["other"], "a***@b.io");
    }
}
