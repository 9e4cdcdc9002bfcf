//! The local twin of an SNS topic: `notifications.jsonl`, one line per notification with its
//! message attributes, built by the rules the SNS twin follows ([`super::message`]: the same
//! predicate, attributes, FIFO ids and size limit).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{NotifyConfig, is_fifo, message};
use crate::sink::{Delivery, Sink, SinkError, SinkFuture, SinkReport, Unwritable, append_file};

/// `notifications.jsonl`.
pub struct NotifyFile {
    path: PathBuf,
    pipeline: String,
    config: NotifyConfig,
}

impl NotifyFile {
    pub fn new(dir: &Path, pipeline: impl Into<String>, config: NotifyConfig) -> Self {
        NotifyFile { path: dir.join("notifications.jsonl"), pipeline: pipeline.into(), config }
    }
}

impl Sink for NotifyFile {
    fn name(&self) -> String {
        format!("notify:{}", self.config.topic)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        // Local files: quick, synchronous work, done when called; the future is already complete.
        Box::pin(std::future::ready(self.write_now(delivery)))
    }
}

impl NotifyFile {
    fn write_now(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let sink = self.name();
        let mut out = append_file(&self.path, &sink)?;
        let err = |source| SinkError::Io { sink: sink.clone(), path: self.path.clone(), source };
        let fifo = is_fifo(&self.config.topic);
        for (index, e) in delivery.emitted.iter().enumerate() {
            let m = match message(&self.config, &self.pipeline, fifo, &e.record, delivery.chain) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    report.unchanged += 1;
                    continue;
                }
                Err(reason) => {
                    report.unwritable.push(Unwritable { index, reason });
                    continue;
                }
            };
            let attributes: serde_json::Map<String, Value> =
                m.attributes.into_iter().map(|(k, (_, v))| (k, Value::String(v))).collect();
            let mut line = serde_json::json!({
                "topic": self.config.topic,
                "record_id": e.record.id,
                "attributes": attributes,
                "message": serde_json::from_str::<Value>(&m.body).unwrap_or(Value::String(m.body)),
            });
            if let (Some(group), Some(dedup)) = (m.group_id, m.dedup_id) {
                line["message_group_id"] = Value::String(group);
                line["message_deduplication_id"] = Value::String(dedup);
            }
            writeln!(out, "{line}").map_err(err)?;
            report.written += 1;
        }
        out.flush().map_err(err)?;
        Ok(report)
    }
}
