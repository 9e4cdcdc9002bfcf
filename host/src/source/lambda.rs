//! Lambda payloads and other `.json` inputs.
//!
//! A `.json` file is one of: a JSON array (one record per element, streamed); an SQS event
//! (`Records[].eventSource == "aws:sqs"`: one record per message, id = messageId, attributes =
//! the string message attributes); an S3 event (`"aws:s3"`: each object is read from the
//! object store, local files under a root or S3, and decoded by its extension, ids
//! `s3://bucket/key#line`); an SNS event (`"aws:sns"`); or any other JSON object, taken as one
//! record. A message of an SQS or
//! SNS event that carries an S3 event, directly or inside an SNS notification, stands for the
//! rows of the objects it names; `s3:TestEvent` messages are skipped, as on AWS.

use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::objects::{Objects, read_object};
use super::{Items, SourceError, SourceItem, Unreadable, json};
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

/// What an SQS message body or SNS message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// An S3 event notification: read these objects.
    S3(Vec<ObjectRef>),
    /// The `s3:TestEvent` S3 sends when a notification is configured: nothing to process.
    TestEvent,
    /// An SNS notification (SNS -> SQS without raw delivery) of something else: its `Message`
    /// is the record.
    Notification(String),
    /// Anything else: the body is a record.
    Plain,
}

/// Looks inside a message body for an S3 event, also when wrapped in an SNS notification
/// (SNS -> SQS without raw delivery).
pub fn envelope(body: &str) -> Envelope {
    let Ok(value) = serde_json::from_str::<Value>(body) else { return Envelope::Plain };
    envelope_of(&value, 0)
}

fn envelope_of(value: &Value, depth: u8) -> Envelope {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Envelope::TestEvent;
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        let is_s3 = |r: &Value| r.get("eventSource").and_then(Value::as_str) == Some("aws:s3");
        if !records.is_empty() && records.iter().all(is_s3) {
            return Envelope::S3(s3_objects(records));
        }
    }
    if depth == 0 && value.get("Type").and_then(Value::as_str) == Some("Notification") {
        if let Some(inner) = value.get("Message").and_then(Value::as_str).and_then(|m| serde_json::from_str(m).ok()) {
            return match envelope_of(&inner, 1) {
                Envelope::Plain => Envelope::Notification(inner.to_string()),
                other => other,
            };
        }
        if let Some(message) = value.get("Message").and_then(Value::as_str) {
            return Envelope::Notification(message.to_string());
        }
    }
    Envelope::Plain
}

/// Items of an SQS event: each message is a record, or (an S3 event, possibly inside an SNS
/// notification) the rows of the objects it names, read from `objects`. Test events yield nothing.
pub fn sqs_items(records: &[Value], objects: &Objects) -> Items {
    let mut parts: Vec<Items> = Vec::new();
    let mut plain: Vec<Value> = Vec::new();
    for m in records {
        match m.get("body").and_then(Value::as_str).map(envelope) {
            Some(Envelope::S3(refs)) => {
                if !plain.is_empty() {
                    parts.push(Box::new(sqs_records(&std::mem::take(&mut plain)).into_iter()));
                }
                parts.push(read_objects(refs, objects.clone()));
            }
            Some(Envelope::TestEvent) => tracing::debug!("skipping s3:TestEvent message"),
            Some(Envelope::Notification(message)) => {
                let mut m = m.clone();
                m["body"] = Value::String(message);
                plain.push(m);
            }
            _ => plain.push(m.clone()),
        }
    }
    if !plain.is_empty() {
        parts.push(Box::new(sqs_records(&plain).into_iter()));
    }
    Box::new(parts.into_iter().flatten())
}

/// Items of an SNS event (Lambda subscribed to a topic): each message is a record (id = the SNS
/// message id) or an S3 event whose objects are read from `objects`.
pub fn sns_items(records: &[Value], objects: &Objects) -> Items {
    let mut parts: Vec<Items> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let sns = r.get("Sns").unwrap_or(&Value::Null);
        let id =
            sns.get("MessageId").and_then(Value::as_str).map(String::from).unwrap_or_else(|| format!("sns#{}", i + 1));
        let message = sns.get("Message").and_then(Value::as_str).unwrap_or_default();
        match envelope(message) {
            Envelope::S3(refs) => parts.push(read_objects(refs, objects.clone())),
            Envelope::TestEvent => {}
            Envelope::Notification(_) | Envelope::Plain => {
                let item = match json::check_json(message) {
                    Ok(()) => SourceItem::Record(Record::new(id, message)),
                    Err(e) => SourceItem::Unreadable(Unreadable {
                        id,
                        raw: message.chars().take(65536).collect(),
                        reason: format!("SNS message is not JSON: {e}"),
                    }),
                };
                parts.push(Box::new(std::iter::once(item)));
            }
        }
    }
    Box::new(parts.into_iter().flatten())
}

/// Reads a `.json` file (see the module docs).
pub fn read_json<R: BufRead + Send + 'static>(
    mut reader: R,
    path: &Path,
    objects: &Objects,
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
                    Ok(sqs_items(&event.records, objects))
                }
                Some("aws:sns") => {
                    let event: Event =
                        serde_json::from_value(value).map_err(|e| format_err(format!("not an SNS event: {e}")))?;
                    Ok(sns_items(&event.records, objects))
                }
                Some("aws:s3") => {
                    let event: Event =
                        serde_json::from_value(value).map_err(|e| format_err(format!("not an S3 event: {e}")))?;
                    Ok(read_objects(s3_objects(&event.records), objects.clone()))
                }
                _ => Ok(Box::new(std::iter::once(SourceItem::Record(Record::new(format!("{name}#1"), text))))),
            }
        }
        Some(_) => Err(format_err("expected a JSON array or object".into())),
    }
}

/// Reads each object in turn.
pub fn read_objects(refs: Vec<ObjectRef>, objects: Objects) -> Items {
    Box::new(refs.into_iter().flat_map(move |o| read_object(&objects, &o.bucket, &o.key)))
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
