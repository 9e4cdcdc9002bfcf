//! The local twin of an S3 prefix: files under `objects/<bucket>/` in the output directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ObjectsConfig, plan_objects, render_rows};
use crate::sink::{Delivery, Sink, SinkError, SinkFuture, SinkReport, Unwritable};

/// Object files under `objects/`.
pub struct ObjectFiles {
    root: PathBuf,
    config: ObjectsConfig,
}

impl ObjectFiles {
    pub fn new(dir: &Path, config: ObjectsConfig) -> Self {
        ObjectFiles { root: dir.join("objects"), config }
    }

    /// The relative key of each file of a batch; see [`plan_objects`].
    pub fn plan(&self, delivery: &Delivery<'_>) -> BTreeMap<String, Vec<(usize, Value)>> {
        plan_objects(&self.config, delivery)
    }
}

impl Sink for ObjectFiles {
    fn name(&self) -> String {
        format!("objects:{}", self.config.bucket)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        // Local files: quick, synchronous work, done when called; the future is already complete.
        Box::pin(std::future::ready(self.write_now(delivery)))
    }
}

impl ObjectFiles {
    fn write_now(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let sink = || format!("objects:{}", self.config.bucket);
        let mut report = SinkReport::default();
        for (key, rows) in self.plan(delivery) {
            let path = self.root.join(&self.config.bucket).join(&key);
            let io = |source| SinkError::Io { sink: sink(), path: path.clone(), source };
            let parent = path.parent().unwrap_or(&self.root);
            fs::create_dir_all(parent).map_err(io)?;
            let bytes = match render_rows(self.config.format, &rows) {
                Ok(bytes) => bytes,
                // As on S3: the rows that cannot be rendered are unwritable, the rest go on.
                Err(e) => {
                    let reason = format!("cannot render CSV: {e}");
                    let rows = rows.iter().map(|(index, _)| Unwritable { index: *index, reason: reason.clone() });
                    report.unwritable.extend(rows);
                    continue;
                }
            };
            // A temporary file renamed into place: a crash never leaves half a file under the
            // final name.
            let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
            tmp.write_all(&bytes).map_err(io)?;
            tmp.persist(&path).map_err(|e| io(e.error))?;
            report.written += rows.len();
        }
        Ok(report)
    }
}
