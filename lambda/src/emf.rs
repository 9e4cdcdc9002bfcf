//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout per metric set,
//! which Lambda's log agent turns into metrics (no PutMetricData calls, no extra latency).
//!
//! Namespace `Weir`:
//! - per invocation, dimension `Pipeline`: `Inputs`, `Delivered`, `Filtered`, `Rejected`,
//!   `Unreadable`, `Failed`, `Outputs`;
//! - per stage, dimensions `Pipeline`, `Stage`: `RecordsIn`, `RecordsOut`, `Filtered`,
//!   `Rejected`, `Isolations`, `Restarts` (this invocation's counts);
//! - `PluginRefusals`, dimension `Pipeline`: a published version the host refused; the
//!   terraform alarm watches it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// Where EMF lines go: stdout in Lambda, a buffer in tests.
#[derive(Clone)]
pub struct Emf {
    out: Arc<Mutex<dyn Write + Send>>,
    pipeline: String,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf").field("pipeline", &self.pipeline).finish_non_exhaustive()
    }
}

impl Emf {
    pub fn stdout(pipeline: &str) -> Emf {
        Emf::to(Arc::new(Mutex::new(std::io::stdout())), pipeline)
    }

    pub fn to(out: Arc<Mutex<dyn Write + Send>>, pipeline: &str) -> Emf {
        Emf { out, pipeline: pipeline.to_string() }
    }

    /// Writes one metric set: `dimensions` (besides `Pipeline`) and `Count` metrics.
    pub fn put(&self, dimensions: &[(&str, &str)], metrics: &[(&str, u64)]) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut names = vec!["Pipeline"];
        names.extend(dimensions.iter().map(|(k, _)| *k));
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "Weir",
                    "Dimensions": [names],
                    "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
                }],
            }),
        );
        line.insert("Pipeline".into(), Value::String(self.pipeline.clone()));
        for (k, v) in dimensions {
            line.insert((*k).into(), Value::String((*v).into()));
        }
        for (n, v) in metrics {
            line.insert((*n).into(), json!(v));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line, so concurrent writers never interleave inside a line.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A refused plugin version.
    pub fn refusal(&self) {
        self.put(&[], &[("PluginRefusals", 1)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_valid_emf() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let emf = Emf::to(buf.clone(), "orders");
        emf.refusal();
        emf.put(&[("Stage", "enrich")], &[("RecordsIn", 3), ("RecordsOut", 2)]);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Weir");
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Pipeline"]]));
        assert_eq!(lines[0]["PluginRefusals"], 1);
        assert_eq!(lines[0]["Pipeline"], "orders");
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Pipeline", "Stage"]]));
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][1],
            json!({"Name": "RecordsOut", "Unit": "Count"})
        );
        assert_eq!(lines[1]["Stage"], "enrich");
        assert_eq!(lines[1]["RecordsIn"], 3);
    }
}
