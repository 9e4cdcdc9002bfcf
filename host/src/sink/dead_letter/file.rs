//! The local twin of the dead-letter queue: `rejected.jsonl`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{DeadLetter, DeadLetterSink};
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
        for l in letters {
            let line =
                serde_json::to_string(l).map_err(|e| SinkError { sink: sink.clone(), message: e.to_string() })?;
            writeln!(out, "{line}").map_err(|e| SinkError { sink: sink.clone(), message: e.to_string() })?;
        }
        out.flush().map_err(|e| SinkError { sink, message: e.to_string() })?;
        Ok(Vec::new())
    }
}
