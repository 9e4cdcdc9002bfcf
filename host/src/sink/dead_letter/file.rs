//! The local twin of the dead-letter queue: `rejected.jsonl`, one letter per line (stage, kind,
//! reason, the record, its source id, the original and the chain), by the rules the SQS twin
//! follows ([`super::message`]: the reason cut the same way).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{DeadLetter, DeadLetterSink, message};
use crate::sink::{Failed, SinkError, SinkFuture, append_file};

/// `rejected.jsonl`.
pub struct RejectedFile {
    path: PathBuf,
    queue: String,
}

impl RejectedFile {
    pub fn new(dir: &Path, queue: impl Into<String>) -> Self {
        RejectedFile { path: dir.join("rejected.jsonl"), queue: queue.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeadLetterSink for RejectedFile {
    fn send<'a>(&'a mut self, letters: &'a [DeadLetter]) -> SinkFuture<'a, Vec<Failed>> {
        Box::pin(std::future::ready(self.append(letters)))
    }
}

impl RejectedFile {
    fn append(&mut self, letters: &[DeadLetter]) -> Result<Vec<Failed>, SinkError> {
        if letters.is_empty() {
            return Ok(Vec::new());
        }
        let sink = format!("dead-letter:{}", self.queue);
        let mut out = append_file(&self.path, &sink)?;
        let io = |sink: &str, source| SinkError::Io { sink: sink.into(), path: self.path.clone(), source };
        for letter in letters {
            // What the queue gets: the same reason, cut as SQS's attribute is. A letter too
            // large for SQS is whole here, as it is whole in S3 behind the pointer the deployed
            // function sends (it always has an offload bucket).
            let m = message(letter);
            let mut line =
                serde_json::to_value(letter).map_err(|source| SinkError::Encode { sink: sink.clone(), source })?;
            line["reason"] = serde_json::Value::String(m.attributes.get("reason").cloned().unwrap_or_default());
            writeln!(out, "{line}").map_err(|source| io(&sink, source))?;
        }
        out.flush().map_err(|source| io(&sink, source))?;
        Ok(Vec::new())
    }
}
