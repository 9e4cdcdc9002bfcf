//! The local twin of an S3 prefix: files under `objects/<bucket>/` in the output directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ObjectsConfig, plan_objects, render_rows};
use crate::sink::{Delivery, Sink, SinkError, SinkFuture, SinkReport};

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
        let err = |e: &dyn std::fmt::Display| SinkError {
            sink: format!("objects:{}", self.config.bucket),
            message: e.to_string(),
        };
        let mut report = SinkReport::default();
        for (key, rows) in self.plan(delivery) {
            let path = self.root.join(&self.config.bucket).join(&key);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| err(&e))?;
            }
            let bytes = render_rows(self.config.format, &rows).map_err(|e| err(&e))?;
            // Write-then-rename: a crash never leaves half a file under the final name.
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, bytes).map_err(|e| err(&e))?;
            fs::rename(&tmp, &path).map_err(|e| err(&e))?;
            report.written += rows.len();
        }
        Ok(report)
    }
}
