//! Lambda payloads and other `.json` inputs.
//!
//! A `.json` file is one of: a JSON array (one record per element, streamed); an SQS event
//! (`Records[].eventSource == "aws:sqs"`: one record per message, id = messageId, attributes =
//! the string message attributes); an S3 event (`"aws:s3"`: each object is read from
//! `<root>/<bucket>/<key>` and decoded by its extension, ids `s3://bucket/key#line`); or any
//! other JSON object, taken as one record.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{Format, Items, SourceError, SourceItem, Unreadable, csv, json};
use crate::record::Record;

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Records")]
    records: Vec<Value>,
}

/// An S3 object reference from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// URL-decoded key.
    pub key: String,
}

/// Decodes an S3 event key: `+` is a space, `%XX` a byte (keys arrive URL-encoded, `/` too).
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// The objects an S3 event names (test events carry none).
pub fn s3_objects(records: &[Value]) -> Vec<ObjectRef> {
    records
        .iter()
        .filter_map(|r| {
            let s3 = r.get("s3")?;
            Some(ObjectRef {
                bucket: s3.get("bucket")?.get("name")?.as_str()?.to_string(),
                key: decode_key(s3.get("object")?.get("key")?.as_str()?),
            })
        })
        .collect()
}

/// SQS messages as records.
pub fn sqs_records(records: &[Value]) -> Vec<SourceItem> {
    records
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let id = m
                .get("messageId")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("sqs#{}", i + 1));
            let Some(body) = m.get("body").and_then(Value::as_str) else {
                return SourceItem::Unreadable(Unreadable {
                    id,
                    raw: m.to_string(),
                    reason: "SQS message has no string `body`".into(),
                });
            };
            if let Err(e) = json::check_json(body) {
                return SourceItem::Unreadable(Unreadable {
                    id,
                    raw: body.chars().take(65536).collect(),
                    reason: format!("message body is not JSON: {e}"),
                });
            }
            let mut attributes: Vec<(String, String)> = m
                .get("messageAttributes")
                .and_then(Value::as_object)
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.get("stringValue")?.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            attributes.sort();
            SourceItem::Record(Record { id, body: body.to_string(), attributes })
        })
        .collect()
}

/// Reads a `.json` file (see the module docs).
pub fn read_json<R: BufRead + Send + 'static>(
    mut reader: R,
    path: &Path,
    s3_root: &Path,
) -> Result<Items, SourceError> {
    let name = path.display().to_string();
    let format_err = |message: String| SourceError::Format { path: path.to_path_buf(), message };
    // Peek at the first non-blank byte without consuming the stream.
    let first = loop {
        let buf = reader.fill_buf().map_err(|source| SourceError::Open { path: path.to_path_buf(), source })?;
        match buf.iter().position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(Box::new(std::iter::empty())),
        Some(b'[') => Ok(json::read_array(reader, name)),
        Some(b'{') => {
            let mut text = String::new();
            reader.read_to_string(&mut text).map_err(|e| format_err(format!("cannot read as UTF-8: {e}")))?;
            let text = text.trim_start_matches('\u{feff}');
            let value: Value = serde_json::from_str(text).map_err(|e| format_err(format!("not JSON: {e}")))?;
            let source = value
                .get("Records")
                .and_then(|r| r.get(0))
                .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
                .and_then(Value::as_str)
                .map(String::from);
            match source.as_deref() {
                Some("aws:sqs") => {
                    let event: Event =
                        serde_json::from_value(value).map_err(|e| format_err(format!("not an SQS event: {e}")))?;
                    Ok(Box::new(sqs_records(&event.records).into_iter()))
                }
                Some("aws:s3") => {
                    let event: Event =
                        serde_json::from_value(value).map_err(|e| format_err(format!("not an S3 event: {e}")))?;
                    Ok(read_objects(s3_objects(&event.records), s3_root.to_path_buf()))
                }
                _ => Ok(Box::new(std::iter::once(SourceItem::Record(Record::new(format!("{name}#1"), text))))),
            }
        }
        Some(_) => Err(format_err("expected a JSON array or object".into())),
    }
}

/// Reads each object from `<root>/<bucket>/<key>`, one after the other.
fn read_objects(objects: Vec<ObjectRef>, root: std::path::PathBuf) -> Items {
    Box::new(objects.into_iter().flat_map(move |object| -> Items {
        let id = format!("s3://{}/{}", object.bucket, object.key);
        let unreadable = |reason: String| -> Items {
            Box::new(std::iter::once(SourceItem::Unreadable(Unreadable { id: id.clone(), raw: String::new(), reason })))
        };
        let local = root.join(&object.bucket).join(&object.key);
        let Some(format) = Format::from_path(&local) else {
            return unreadable(format!("{id}: unknown format (expected .csv, .jsonl, .ndjson or .json)"));
        };
        let file = match File::open(&local) {
            Ok(f) => f,
            Err(e) => return unreadable(format!("{id}: cannot open {}: {e}", local.display())),
        };
        let reader = BufReader::with_capacity(256 * 1024, file);
        match format {
            Format::Csv => {
                csv::read(reader, id, vec![("s3_bucket".into(), object.bucket), ("s3_key".into(), object.key)])
            }
            Format::JsonLines => json::read_lines(reader, id),
            Format::Json => json::read_array(reader, id),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("orders/2024+05%2F01/caf%C3%A9+1.csv"), "orders/2024 05/01/café 1.csv");
    }

    #[test]
    fn sqs_messages_become_records_with_string_attributes() {
        let event: Value = serde_json::from_str(
            r#"{"Records":[{"messageId":"m-1","body":"{\"a\":1}","messageAttributes":{"tenant":{"stringValue":"acme","dataType":"String"},"blob":{"binaryValue":"AA==","dataType":"Binary"}},"eventSource":"aws:sqs"},{"messageId":"m-2","body":"oops","eventSource":"aws:sqs"}]}"#,
        )
        .unwrap();
        let items = sqs_records(event["Records"].as_array().unwrap());
        assert_eq!(items[0], SourceItem::Record(Record::new("m-1", "{\"a\":1}").with_attribute("tenant", "acme")));
        assert!(
            matches!(&items[1], SourceItem::Unreadable(u) if u.id == "m-2" && u.reason.starts_with("message body is not JSON"))
        );
    }
}
