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

pub use aws_lambda_events::event::s3::S3Entity;
pub use aws_lambda_events::event::sns::{SnsEvent, SnsRecord};
pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::objects::ObjectRef;
use super::objects::Objects;
use super::resume::{Marks, Resume};
use super::{Items, SourceError, SourceItem, Unreadable, cap_raw, json};
use crate::record::Record;

/// A Lambda event weir runs, typed by the source of its records (`eventSource`, or
/// `EventSource` in SNS events).
#[derive(Debug, Clone)]
pub enum Event {
    Sqs(SqsEvent),
    S3(S3Notification),
    Sns(SnsEvent),
    /// `Records` is empty: nothing to do.
    Empty,
}

/// Why a payload is not an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("expected an SQS, S3 or SNS event (an object with `Records`), got one with keys [{}]", keys.join(", "))]
    NoRecords { keys: Vec<String> },
    #[error("eventSource {}; supported: aws:sqs, aws:s3, aws:sns", source_name.as_deref().unwrap_or("(none)"))]
    UnknownSource { source_name: Option<String> },
    #[error("not an {kind} event: {source}")]
    Malformed { kind: &'static str, source: serde_json::Error },
}

/// An S3 event notification, read for what weir uses of it: each record's bucket and object
/// (`aws_lambda_events`' [`S3Entity`]). Its `S3EventRecord` also requires `eventTime`,
/// `userIdentity` and `requestParameters`, which S3 sends but other producers of the format
/// (replays, emulators, hand-written tests) may leave out; refusing a notification for a field
/// weir never reads would lose its objects.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct S3Notification {
    #[serde(rename = "Records")]
    pub records: Vec<S3EventRecord>,
}

/// One record of an [`S3Notification`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct S3EventRecord {
    #[serde(rename = "eventName", default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    pub s3: S3Entity,
}

/// Only what tells the events apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "Records")]
    records: Vec<ProbeRecord>,
}

#[derive(Deserialize)]
struct ProbeRecord {
    #[serde(alias = "EventSource", rename = "eventSource")]
    event_source: Option<String>,
}

impl Event {
    /// Reads a payload by the source of its first record, then as that event's type.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let probe: Probe = serde_json::from_value(value.clone()).map_err(|_| EventError::NoRecords {
            keys: value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        })?;
        let Some(first) = probe.records.into_iter().next() else { return Ok(Event::Empty) };
        let malformed = |kind| move |source| EventError::Malformed { kind, source };
        match first.event_source.as_deref() {
            Some("aws:sqs") => serde_json::from_value(value).map(Event::Sqs).map_err(malformed("SQS")),
            Some("aws:s3") => serde_json::from_value(value).map(Event::S3).map_err(malformed("S3")),
            Some("aws:sns") => serde_json::from_value(value).map(Event::Sns).map_err(malformed("SNS")),
            _ => Err(EventError::UnknownSource { source_name: first.event_source }),
        }
    }
}

/// Decodes an S3 event key: `+` is a space, `%XX` a byte (keys arrive URL-encoded, `/` too).
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// The objects an S3 event names, or why the event cannot be read: a record without a bucket
/// name or an object key (fields AWS always sends) names nothing to read, and leaving it out
/// would acknowledge the event unread.
pub fn s3_objects(records: &[S3EventRecord]) -> Result<Vec<ObjectRef>, String> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let missing = |field| format!("S3 event record {} has no {field}; AWS always sends one", i + 1);
            Ok(ObjectRef {
                bucket: r.s3.bucket.name.clone().ok_or_else(|| missing("bucket name"))?,
                key: decode_key(r.s3.object.key.as_deref().ok_or_else(|| missing("object key"))?),
                // The version this event is about (versioned buckets): later uploads of the key
                // are other events, read as other versions with other record ids.
                version: r.s3.object.version_id.clone().filter(|v| !v.is_empty() && v != "null"),
            })
        })
        .collect()
}

/// The rows of the objects an S3 event names, or one unreadable item (`id`, the event's raw
/// text) when it names none it can.
pub fn s3_items(id: &str, event: &S3Notification, objects: Objects, from: Option<Resume>, marks: Marks) -> Items {
    match s3_objects(&event.records) {
        Ok(refs) => super::objects::read_unit(refs, objects, from, marks),
        Err(reason) => {
            let raw = serde_json::to_string(event).unwrap_or_default();
            let unreadable = Unreadable { id: id.to_string(), raw: cap_raw(raw.as_bytes()), reason };
            Box::new(std::iter::once(SourceItem::Unreadable(unreadable)))
        }
    }
}

/// An S3 event's identity as one unit of work: its objects and their versions (the sequencer,
/// else the ETag), so a retry of the same event resumes and a new upload starts afresh.
pub fn s3_event_id(records: &[S3EventRecord]) -> String {
    records
        .iter()
        .map(|r| {
            let o = &r.s3.object;
            let version = o.sequencer.as_deref().or(o.e_tag.as_deref()).unwrap_or_default();
            format!(
                "s3://{}/{}#{version}",
                r.s3.bucket.name.as_deref().unwrap_or_default(),
                o.key.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An SQS message's id: its messageId, or its place in the batch.
pub fn message_id(index: usize, m: &SqsMessage) -> String {
    m.message_id.clone().unwrap_or_else(|| format!("sqs#{}", index + 1))
}

/// SQS messages as records.
pub fn sqs_records(messages: &[SqsMessage]) -> Vec<SourceItem> {
    messages.iter().enumerate().map(|(i, m)| sqs_record(message_id(i, m), m)).collect()
}

/// One SQS message as a record (id = messageId, attributes = its string message attributes).
pub fn sqs_record(id: String, m: &SqsMessage) -> SourceItem {
    let Some(body) = &m.body else {
        return SourceItem::Unreadable(Unreadable {
            id,
            raw: serde_json::to_string(m).unwrap_or_default(),
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
    let mut attributes: Vec<(String, String)> =
        m.message_attributes.iter().filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?))).collect();
    attributes.sort();
    SourceItem::Record(Record { id, body: body.to_string(), attributes })
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
    /// Records of `aws:s3` that are not an S3 event notification (a field AWS always sends is
    /// missing): the message is unreadable, for this reason.
    Malformed(String),
    /// Anything else: the body is a record.
    Plain,
}

/// Looks inside a message body for an S3 event, also when wrapped in an SNS notification
/// (SNS -> SQS without raw delivery). A body is data, not a Lambda event: anything that is
/// not one of these shapes is a record.
pub fn envelope(body: &str) -> Envelope {
    let Ok(value) = serde_json::from_str::<Value>(body) else { return Envelope::Plain };
    envelope_of(value, 0)
}

fn envelope_of(value: Value, depth: u8) -> Envelope {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Envelope::TestEvent;
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        let is_s3 = |r: &Value| r.get("eventSource").and_then(Value::as_str) == Some("aws:s3");
        if !records.is_empty() && records.iter().all(is_s3) {
            return match serde_json::from_value::<S3Notification>(value) {
                Ok(event) => match s3_objects(&event.records) {
                    Ok(refs) => Envelope::S3(refs),
                    Err(reason) => {
                        Envelope::Malformed(format!("an S3 event notification that cannot be read: {reason}"))
                    }
                },
                Err(e) => Envelope::Malformed(format!("an S3 event notification that cannot be read: {e}")),
            };
        }
    }
    if depth == 0 && value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let Some(message) = value.get("Message").and_then(Value::as_str) else { return Envelope::Plain };
        return match serde_json::from_str::<Value>(message) {
            Ok(inner) => match envelope_of(inner, 1) {
                Envelope::Plain => Envelope::Notification(message.to_string()),
                other => other,
            },
            Err(_) => Envelope::Notification(message.to_string()),
        };
    }
    Envelope::Plain
}

/// What one SQS message stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A record (or an unreadable message).
    Item(SourceItem),
    /// The rows of these objects (an S3 event in the body); `redelivered` unless SQS says this
    /// is its first receive (then no checkpoint can exist); `resume` where a continuation
    /// message says to go on.
    Objects { id: String, refs: Vec<ObjectRef>, redelivered: bool, resume: Option<Resume> },
    /// An `s3:TestEvent`: nothing to process.
    Skip { id: String },
}

/// Reads the `index`th message of an SQS batch.
pub fn message(index: usize, m: &SqsMessage) -> Message {
    let id = message_id(index, m);
    match m.body.as_deref().map(envelope) {
        Some(Envelope::S3(refs)) => {
            let receives = m.attributes.get("ApproximateReceiveCount");
            let redelivered = receives.and_then(|n| n.parse::<u32>().ok()).is_none_or(|n| n > 1);
            let resume = carried_resume(&id, m);
            Message::Objects { id, refs, redelivered, resume }
        }
        Some(Envelope::TestEvent) => Message::Skip { id },
        Some(Envelope::Notification(message)) => {
            Message::Item(sqs_record(id, &SqsMessage { body: Some(message), ..m.clone() }))
        }
        Some(Envelope::Malformed(reason)) => Message::Item(SourceItem::Unreadable(Unreadable {
            id,
            raw: m.body.as_deref().unwrap_or_default().chars().take(65536).collect(),
            reason,
        })),
        Some(Envelope::Plain) | None => Message::Item(sqs_record(id, m)),
    }
}

/// Items of an SQS event: each message is a record, or (an S3 event, possibly inside an SNS
/// notification) the rows of the objects it names, read from `objects`. Test events yield nothing.
pub fn sqs_items(messages: &[SqsMessage], objects: &Objects) -> Items {
    let mut parts: Vec<Items> = Vec::new();
    let mut plain: Vec<SourceItem> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match message(i, m) {
            Message::Item(item) => plain.push(item),
            Message::Objects { refs, .. } => {
                if !plain.is_empty() {
                    parts.push(Box::new(std::mem::take(&mut plain).into_iter()));
                }
                parts.push(read_objects(refs, objects.clone()));
            }
            Message::Skip { id } => tracing::debug!(message = %id, "skipping s3:TestEvent message"),
        }
    }
    if !plain.is_empty() {
        parts.push(Box::new(plain.into_iter()));
    }
    Box::new(parts.into_iter().flatten())
}

/// Items of an SNS event (Lambda subscribed to a topic): each message is a record (id = the SNS
/// message id) or an S3 event whose objects are read from `objects`.
pub fn sns_items(records: &[SnsRecord], objects: &Objects) -> Items {
    let mut parts: Vec<Items> = Vec::new();
    for r in records {
        let (id, message) = (r.sns.message_id.clone(), &r.sns.message);
        let item = match envelope(message) {
            Envelope::S3(refs) => {
                parts.push(read_objects(refs, objects.clone()));
                continue;
            }
            Envelope::TestEvent => continue,
            Envelope::Malformed(reason) => {
                SourceItem::Unreadable(Unreadable { id, raw: message.chars().take(65536).collect(), reason })
            }
            Envelope::Notification(_) | Envelope::Plain => match json::check_json(message) {
                Ok(()) => SourceItem::Record(Record::new(id, message.clone())),
                Err(e) => SourceItem::Unreadable(Unreadable {
                    id,
                    raw: message.chars().take(65536).collect(),
                    reason: format!("SNS message is not JSON: {e}"),
                }),
            },
        };
        parts.push(Box::new(std::iter::once(item)));
    }
    Box::new(parts.into_iter().flatten())
}

/// The SNS messages' identity as one unit of work.
pub fn sns_event_id(records: &[SnsRecord]) -> String {
    let ids: Vec<&str> = records.iter().map(|r| r.sns.message_id.as_str()).collect();
    format!("sns:{}", ids.join(","))
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
            match Event::from_value(value) {
                Ok(Event::Sqs(event)) => Ok(sqs_items(&event.records, objects)),
                Ok(Event::Sns(event)) => Ok(sns_items(&event.records, objects)),
                Ok(Event::S3(event)) => {
                    Ok(s3_items(&format!("{name}#1"), &event, objects.clone(), None, Marks::default()))
                }
                Ok(Event::Empty) => Ok(Box::new(std::iter::empty())),
                Err(e @ EventError::Malformed { .. }) => Err(format_err(e.to_string())),
                // Any other object is one record.
                Err(_) => Ok(Box::new(std::iter::once(SourceItem::Record(Record::new(format!("{name}#1"), text))))),
            }
        }
        Some(_) => Err(format_err("expected a JSON array or object".into())),
    }
}

/// Reads each object in turn.
pub fn read_objects(refs: Vec<ObjectRef>, objects: Objects) -> Items {
    super::objects::read_unit(refs, objects, None, Marks::default())
}

/// The message attribute of a continuation: the message was re-sent to its queue to go on
/// reading its objects where this says (a JSON [`Resume`]), instead of being redelivered.
pub const RESUME_ATTRIBUTE: &str = "weir-resume";

/// The resume a continuation message carries, if any (one that cannot be read is ignored: the
/// objects are read from their start, the sinks absorb the repeats).
fn carried_resume(id: &str, m: &SqsMessage) -> Option<Resume> {
    let text = m.message_attributes.get(RESUME_ATTRIBUTE)?.string_value.as_deref()?;
    match serde_json::from_str(text) {
        Ok(resume) => Some(resume),
        Err(e) => {
            tracing::warn!(message = %id, error = %e, "ignoring a {RESUME_ATTRIBUTE} attribute that is not a resume; reading from the start");
            None
        }
    }
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
        let Ok(Event::Sqs(event)) = Event::from_value(event) else { panic!("an SQS event") };
        let items = sqs_records(&event.records);
        assert_eq!(items[0], SourceItem::Record(Record::new("m-1", "{\"a\":1}").with_attribute("tenant", "acme")));
        assert!(
            matches!(&items[1], SourceItem::Unreadable(u) if u.id == "m-2" && u.reason.starts_with("message body is not JSON"))
        );
    }

    #[test]
    fn events_are_told_apart_by_their_source_and_read_as_their_type() {
        let fixture = |name: &str| -> Value {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let Ok(Event::S3(s3)) = Event::from_value(fixture("s3-event.json")) else { panic!("an S3 event") };
        assert_eq!(s3_objects(&s3.records).unwrap()[0].bucket, "example-bucket");
        assert!(matches!(Event::from_value(fixture("sqs-event.json")), Ok(Event::Sqs(_))));
        assert!(matches!(Event::from_value(serde_json::json!({"Records": []})), Ok(Event::Empty)));
        let err = Event::from_value(serde_json::json!({"detail": {}})).unwrap_err().to_string();
        assert!(err.contains("keys [detail]"), "{err}");
        let err = Event::from_value(serde_json::json!({"Records": [{"eventSource": "aws:kinesis"}]})).unwrap_err();
        assert!(err.to_string().contains("eventSource aws:kinesis"), "{err}");
        // An S3 record without what AWS always sends is malformed, not silently another shape.
        let err = Event::from_value(serde_json::json!({"Records": [{"eventSource": "aws:s3"}]})).unwrap_err();
        assert!(matches!(err, EventError::Malformed { kind: "S3", .. }), "{err}");
    }
}
