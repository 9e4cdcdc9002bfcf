//! `csv-reshape`: turns a CSV row (a JSON object of strings, header -> value) into a typed record.
//!
//! Steps, in order, for each column:
//! 1. empty strings are dropped (the column is absent), unless `keep_empty = true`;
//! 2. `cast.<column> = int | float | bool | date` converts the string; a value that cannot be
//!    cast rejects the row with a reason naming the column and the value;
//! 3. `rename.<column> = <new name>` renames;
//! 4. `drop = a,b` removes columns (original names).
//!
//! Casts: `int` is a 64-bit integer (`-12`, `+7`); `float` a finite decimal (`3.5`, `1e3`),
//! kept exact; `bool` one of true/false/yes/no/1/0 (any case); `date` an ISO date
//! (`2024-05-01`) or an RFC 3339 date-time, output as `YYYY-MM-DD` (UTC).

use std::collections::BTreeMap;
use std::str::FromStr;

use weir_plugin::{Config, Emitter, Map, Number, Record, Reject, Transform, Value, kind_of};

/// A column type to cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    Int,
    Float,
    Bool,
    Date,
}

impl std::fmt::Display for Cast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cast::Int => "int",
            Cast::Float => "float",
            Cast::Bool => "bool",
            Cast::Date => "date",
        })
    }
}

impl FromStr for Cast {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "int" => Ok(Cast::Int),
            "float" => Ok(Cast::Float),
            "bool" => Ok(Cast::Bool),
            "date" => Ok(Cast::Date),
            other => Err(format!("{other:?} is not a cast; allowed: int, float, bool, date")),
        }
    }
}

/// The csv-reshape transform.
#[derive(Debug, Default)]
pub struct CsvReshape {
    casts: BTreeMap<String, Cast>,
    renames: BTreeMap<String, String>,
    drops: Vec<String>,
    keep_empty: bool,
}

impl Transform for CsvReshape {
    fn init(config: &Config) -> Result<Self, String> {
        let mut plugin = CsvReshape { keep_empty: config.parse_or("keep_empty", false)?, ..Default::default() };
        for (key, value) in config.iter() {
            if let Some(column) = key.strip_prefix("cast.") {
                let cast = value.parse().map_err(|e| format!("config `{key}`: {e}"))?;
                plugin.casts.insert(column.to_string(), cast);
            } else if let Some(column) = key.strip_prefix("rename.") {
                if value.trim().is_empty() {
                    return Err(format!("config `{key}`: the new name must not be empty"));
                }
                plugin.renames.insert(column.to_string(), value.trim().to_string());
            } else if key == "drop" {
                plugin.drops = config.list("drop").into_iter().map(String::from).collect();
            } else if key != "keep_empty" {
                return Err(format!(
                    "unknown config key `{key}`; allowed: cast.<column>, rename.<column>, drop, keep_empty"
                ));
            }
        }
        Ok(plugin)
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
        let row = record.json_object()?;
        let reshaped = self.reshape(row)?;
        out.emit_json(&reshaped)
    }
}

weir_plugin::export_transform!(CsvReshape);

impl CsvReshape {
    /// Reshapes one row.
    pub fn reshape(&self, row: Map<String, Value>) -> Result<Map<String, Value>, Reject> {
        let mut out = Map::new();
        for (column, value) in row {
            if self.drops.contains(&column) {
                continue;
            }
            let value = match value {
                Value::String(s) if s.is_empty() && !self.keep_empty => continue,
                Value::String(s) => match self.casts.get(&column) {
                    Some(cast) => cast_value(&column, &s, *cast)?,
                    None => Value::String(s),
                },
                // Already typed (a JSON source rather than CSV): keep it if it is what the cast
                // would produce.
                other if self.casts.contains_key(&column) => {
                    let fits = matches!(
                        (self.casts[&column], &other),
                        (Cast::Int, Value::Number(n)) if n.is_i64() || n.is_u64()
                    ) || matches!(
                        (self.casts[&column], &other),
                        (Cast::Float, Value::Number(_)) | (Cast::Bool, Value::Bool(_))
                    );
                    if !fits {
                        return Err(Reject::new(format!(
                            "column `{column}`: expected a string to cast to {}, got {}",
                            self.casts[&column],
                            kind_of(&other)
                        )));
                    }
                    other
                }
                other => other,
            };
            let name = self.renames.get(&column).cloned().unwrap_or(column);
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// Casts one CSV string.
pub fn cast_value(column: &str, raw: &str, cast: Cast) -> Result<Value, Reject> {
    let s = raw.trim();
    let fail = |what: &str| Reject::new(format!("column `{column}`: cannot cast {raw:?} to {what}"));
    match cast {
        Cast::Int => s.parse::<i64>().map(Value::from).map_err(|_| fail("int")),
        Cast::Float => {
            let f: f64 = s.parse().map_err(|_| fail("float"))?;
            if !f.is_finite() || s.chars().any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
                return Err(fail("float"));
            }
            // Keep the decimal text exact (serde_json's `arbitrary_precision`).
            let text = s.strip_prefix('+').unwrap_or(s);
            Number::from_str(text).map(Value::Number).map_err(|_| fail("float"))
        }
        Cast::Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "y" | "t" => Ok(Value::Bool(true)),
            "false" | "no" | "0" | "n" | "f" => Ok(Value::Bool(false)),
            _ => Err(fail("bool")),
        },
        Cast::Date => {
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Ok(Value::String(d.format("%Y-%m-%d").to_string()));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Value::String(t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string()))
                .map_err(|_| fail("date (YYYY-MM-DD or RFC 3339)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::testing::Harness;

    const CONFIG: &[(&str, &str)] = &[
        ("cast.amount", "float"),
        ("cast.qty", "int"),
        ("cast.gift", "bool"),
        ("cast.placed", "date"),
        ("rename.placed", "date"),
        ("drop", "internal_note"),
    ];

    #[test]
    fn renames_drops_casts_and_drops_empty_strings() {
        let mut h = Harness::<CsvReshape>::new(CONFIG).unwrap();
        let out = h
            .run(r#"{"amount":"19.99","qty":" 3","gift":"Yes","placed":"2024-05-01T01:00:00+02:00","internal_note":"x","coupon":"","name":"Ann"}"#)
            .unwrap();
        let v = out[0].json();
        assert_eq!(v["amount"].to_string(), "19.99");
        assert_eq!(v["qty"], 3);
        assert_eq!(v["gift"], true);
        assert_eq!(v["date"], "2024-04-30");
        assert!(v.get("placed").is_none() && v.get("internal_note").is_none() && v.get("coupon").is_none());
        assert_eq!(v["name"], "Ann");
    }

    #[test]
    fn uncastable_values_reject_naming_the_column() {
        let mut h = Harness::<CsvReshape>::new(CONFIG).unwrap();
        for (body, expect) in [
            (r#"{"qty":"3.5"}"#, "column `qty`: cannot cast \"3.5\" to int"),
            (r#"{"amount":"12,50"}"#, "column `amount`: cannot cast \"12,50\" to float"),
            (r#"{"amount":"NaN"}"#, "column `amount`: cannot cast \"NaN\" to float"),
            (r#"{"amount":"inf"}"#, "column `amount`: cannot cast \"inf\" to float"),
            (r#"{"gift":"maybe"}"#, "column `gift`: cannot cast \"maybe\" to bool"),
            (
                r#"{"placed":"01/05/2024"}"#,
                "column `placed`: cannot cast \"01/05/2024\" to date (YYYY-MM-DD or RFC 3339)",
            ),
        ] {
            assert_eq!(h.run(body).unwrap_err().reason(), expect);
        }
    }

    #[test]
    fn already_typed_values_pass_when_they_fit_the_cast() {
        let mut h = Harness::<CsvReshape>::new(CONFIG).unwrap();
        let v = h.run(r#"{"amount":19.99,"qty":3,"gift":false}"#).unwrap()[0].json();
        assert_eq!(
            (v["amount"].to_string().as_str(), v["qty"].as_i64(), v["gift"].as_bool()),
            ("19.99", Some(3), Some(false))
        );
        let e = h.run(r#"{"qty":2.5}"#).unwrap_err();
        assert_eq!(e.reason(), "column `qty`: expected a string to cast to int, got number");
        assert!(h.run(r#"{"gift":[1]}"#).is_err());
    }

    #[test]
    fn keep_empty_keeps_empty_strings_uncast() {
        let mut h = Harness::<CsvReshape>::new(&[("keep_empty", "true")]).unwrap();
        assert_eq!(h.run(r#"{"a":""}"#).unwrap()[0].json()["a"], "");
    }

    #[test]
    fn bad_config_names_the_key() {
        let e = Harness::<CsvReshape>::new(&[("cast.qty", "integer")]).err().unwrap();
        assert_eq!(e, "config `cast.qty`: \"integer\" is not a cast; allowed: int, float, bool, date");
        let e = Harness::<CsvReshape>::new(&[("rename_x", "y")]).err().unwrap();
        assert!(e.starts_with("unknown config key `rename_x`"), "{e}");
    }
}
