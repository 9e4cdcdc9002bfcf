//! Progress through long inputs (an S3 object's rows) kept between runs, so that an object cut
//! off by the deadline or a failure resumes where it stopped instead of starting over: a
//! [`Resume`] (the object, its items done, the byte offset and line to read on from, its ETag).
//! A checkpoint only ever counts rows all of whose effects were completed, so a lost or stale
//! one costs repeated work, never a lost row: the sinks absorb repeats.

use serde_json::{Value, json};

use crate::source::resume::Resume;

use crate::aws::describe;
use crate::plugin::sha256_hex;

/// Where the runner keeps progress (see the module docs).
pub trait Checkpoints: Send {
    /// Where `id` resumes (`None` when unknown).
    fn done(&self, id: &str) -> Option<Resume>;
    /// Records that `id` resumes at `at`.
    fn save(&self, id: &str, at: &Resume);
    /// `id` is finished: forget its checkpoint.
    fn clear(&self, id: &str);
}

/// Checkpoints in S3 under a prefix (deployed: the bindings document's `checkpoints`,
/// `weir-checkpoints/<pipeline>/` in the output bucket): one small JSON object per unfinished
/// input, named by a hash of its id, deleted when it finishes; terraform lets the function read,
/// write and delete exactly there. Failing to read one means starting over; failing to write
/// one is logged: neither loses a row.
pub struct S3Checkpoints {
    s3: aws_sdk_s3::Client,
    runtime: tokio::runtime::Handle,
    bucket: String,
    prefix: String,
}

impl S3Checkpoints {
    /// Checkpoints under `s3://bucket/prefix`; the calls block on `runtime` (the clients').
    pub fn new(s3: aws_sdk_s3::Client, runtime: tokio::runtime::Handle, bucket: &str, prefix: &str) -> Self {
        S3Checkpoints { s3, runtime, bucket: bucket.to_string(), prefix: prefix.to_string() }
    }

    fn key(&self, id: &str) -> String {
        format!("{}{}.json", self.prefix, sha256_hex(id.as_bytes()))
    }
}

impl Checkpoints for S3Checkpoints {
    fn done(&self, id: &str) -> Option<Resume> {
        let key = self.key(id);
        self.runtime.block_on(async {
            let out = self.s3.get_object().bucket(&self.bucket).key(&key).send().await.ok()?;
            let bytes = out.body.collect().await.ok()?.into_bytes();
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            if v.get("id")?.as_str()? != id {
                return None;
            }
            serde_json::from_value(v.get("resume")?.clone()).ok()
        })
    }

    fn save(&self, id: &str, at: &Resume) {
        let key = self.key(id);
        let body = json!({ "id": id, "resume": at }).to_string();
        let put = self.runtime.block_on(
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("application/json")
                .body(aws_sdk_s3::primitives::ByteStream::from(body.into_bytes()))
                .send(),
        );
        match put {
            Ok(_) => {
                tracing::info!(input = %id, object = at.object, items = at.items, "stopped before its end; checkpoint saved")
            }
            Err(e) => {
                tracing::warn!(input = %id, error = %describe(&e), "cannot save a checkpoint; the retry starts over")
            }
        }
    }

    fn clear(&self, id: &str) {
        let key = self.key(id);
        if let Err(e) = self.runtime.block_on(self.s3.delete_object().bucket(&self.bucket).key(&key).send()) {
            tracing::warn!(input = %id, error = %describe(&e), "cannot delete a finished checkpoint");
        }
    }
}
