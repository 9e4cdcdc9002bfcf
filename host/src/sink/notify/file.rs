//! The local twin of an SNS topic: `notifications.jsonl`, one line per notification with its
//! message attributes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{NotifyConfig, matches, message_attributes};
use crate::sink::{Delivery, Sink, SinkError, SinkFuture, SinkReport, append_file};

/// `notifications.jsonl`.
pub struct NotifyFile {
    path: PathBuf,
    config: NotifyConfig,
}

impl NotifyFile {
    pub fn new(dir: &Path, config: NotifyConfig) -> Self {
        NotifyFile { path: dir.join("notifications.jsonl"), config }
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
        let mut out = append_file(&self.path, &self.name())?;
        for e in delivery.emitted {
            let body: Value = serde_json::from_str(&e.record.body).unwrap_or(Value::Null);
            if let Some(p) = &self.config.when
                && !matches(p, &body)
            {
                report.unchanged += 1;
                continue;
            }
            let line = serde_json::json!({
                "topic": self.config.topic,
                "record_id": e.record.id,
                "attributes": message_attributes(&self.config.attributes, &body),
                "message": body,
                "chain": delivery.chain,
            });
            writeln!(out, "{line}").map_err(|err| SinkError { sink: self.name(), message: err.to_string() })?;
            report.written += 1;
        }
        out.flush().map_err(|err| SinkError { sink: self.name(), message: err.to_string() })?;
        Ok(report)
    }
}
