//! Objects named by S3 events, read as streams.
//!
//! An [`ObjectStore`] opens `bucket/key` as a byte stream: [`LocalObjects`] from a directory
//! tree (replaying production events on a laptop), [`S3Objects`] with `GetObject`, whose body is
//! streamed, never buffered whole, so memory stays flat on a multi-GB object. [`read_object`]
//! picks the decoder by the key's extension (`.csv`, `.jsonl`/`.ndjson`, `.json`, each optionally
//! `.gz`, decompressed on the fly) and turns every way an object can fail into an item:
//!
//! - gone before it was read (`NoSuchKey`), empty, of an unknown format, not UTF-8, not CSV or
//!   JSON: [`SourceItem::Unreadable`], with the reason, for the dead-letter destination (a retry
//!   cannot help);
//! - any other store error, or the connection dropping mid-object: [`SourceItem::Failed`], so
//!   the message that named the object is retried. Sinks are idempotent per record id
//!   (`s3://bucket/key#line`, `s3://bucket/key?versionId=V#line` for the version an event names in
//!   a versioned bucket, which is the version read), so rows read before the failure are not
//!   written twice.
//!
//! [`ObjectFilter`] is the prefix/suffix guard: objects outside it are skipped (and logged), the
//! way an S3 notification filter would, so that a pipeline writing its output into the bucket it
//! reads from cannot trigger itself.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use super::{Counting, Format, Items, Progress, SourceItem, SourceLimits, Unreadable, csv, json};

/// Why an object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// It is not there (deleted before it was read): retrying will not help.
    Missing(String),
    /// Anything else: retrying may help.
    Other(String),
}

/// An object an event names: its bucket, key and (in a versioned bucket) version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// URL-decoded key.
    pub key: String,
    /// The event's `versionId`; `None` in an unversioned bucket.
    pub version: Option<String>,
}

impl ObjectRef {
    /// An unversioned object.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        ObjectRef { bucket: bucket.into(), key: key.into(), version: None }
    }

    /// Its id, the stem of its records' ids: `s3://bucket/key`, with `?versionId=…` when the
    /// event names a version, so that a key overwritten daily gives each day's rows new ids
    /// (their aggregates count, their `put-if-absent` items are written, their files are new).
    pub fn id(&self) -> String {
        match &self.version {
            Some(v) => format!("s3://{}/{}?versionId={v}", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// Opens objects as byte streams.
pub trait ObjectStore: Send + Sync {
    /// Opens the object (the version it names, if any) for reading. The stream may fail part
    /// way; decoders report that.
    fn open(&self, object: &ObjectRef) -> Result<Box<dyn Read + Send>, OpenError>;
}

/// Objects as files under `<root>/<bucket>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    pub root: PathBuf,
}

impl ObjectStore for LocalObjects {
    /// A local tree keeps one version of each key: the file.
    fn open(&self, object: &ObjectRef) -> Result<Box<dyn Read + Send>, OpenError> {
        let path = self.root.join(&object.bucket).join(&object.key);
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(OpenError::Missing(format!("no such file {}", path.display())))
            }
            Err(e) => Err(OpenError::Other(format!("cannot open {}: {e}", path.display()))),
        }
    }
}

/// Objects in S3, streamed with `GetObject`. Reads block on the runtime: call from a blocking
/// thread, never from async code.
#[derive(Debug, Clone)]
pub struct S3Objects {
    pub client: aws_sdk_s3::Client,
    pub runtime: tokio::runtime::Handle,
}

impl ObjectStore for S3Objects {
    fn open(&self, object: &ObjectRef) -> Result<Box<dyn Read + Send>, OpenError> {
        let request = self.client.get_object().bucket(&object.bucket).key(&object.key);
        let response = self.runtime.block_on(request.set_version_id(object.version.clone()).send());
        match response {
            Ok(out) => {
                let body = out.body.into_async_read();
                Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(body, self.runtime.clone())))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(OpenError::Missing("NoSuchKey: the object was deleted before it was read".into()))
            }
            // A version that no longer exists (deleted by its lifecycle rule, or by hand).
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchVersion") => Err(
                OpenError::Missing(format!("{}: the version was deleted before it was read", crate::aws::describe(&e))),
            ),
            Err(e) => Err(OpenError::Other(format!("GetObject: {}", crate::aws::describe(&e)))),
        }
    }
}

/// Which object keys a pipeline reads: a key prefix and a list of suffixes (empty = any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    pub prefix: String,
    pub suffixes: Vec<String>,
    /// Keys never read, whatever the above: `(bucket, prefix)` where the pipeline writes.
    pub exclude: Vec<(String, String)>,
}

impl ObjectFilter {
    /// Whether `bucket/key` is to be read.
    pub fn accepts(&self, bucket: &str, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && (self.suffixes.is_empty() || self.suffixes.iter().any(|s| key.ends_with(s.as_str())))
            && !self.exclude.iter().any(|(b, p)| b == bucket && key.starts_with(p.as_str()))
    }
}

/// Where objects come from, which are read, and how much of one is held at once.
#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    pub filter: ObjectFilter,
    pub limits: SourceLimits,
}

impl Objects {
    /// Local files under `root`, every key accepted, default limits.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Objects {
            store: Arc::new(LocalObjects { root: root.into() }),
            filter: ObjectFilter::default(),
            limits: SourceLimits::default(),
        }
    }
}

/// How far a compressed object may expand: past `free_bytes` of output, at most `max_ratio`
/// bytes out per byte in. A real export compresses 5 to 20 times; a gzip bomb, a thousand.
#[derive(Debug, Clone, Copy)]
struct InflationLimits {
    free_bytes: u64,
    max_ratio: u64,
}

impl Default for InflationLimits {
    fn default() -> Self {
        InflationLimits { free_bytes: 256 * 1024 * 1024, max_ratio: 200 }
    }
}

/// A decompressed stream that stops, as bad data, once it expands past its [`InflationLimits`].
struct Inflation<R> {
    inner: R,
    /// Compressed bytes read so far.
    compressed: Progress,
    inflated: u64,
    limits: InflationLimits,
}

impl<R: Read> Read for Inflation<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        let compressed = self.compressed.bytes().max(1);
        if self.inflated > self.limits.free_bytes && self.inflated / compressed > self.limits.max_ratio {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "decompressed to {} bytes from {compressed}, more than {} times (a gzip bomb?); not read further",
                    self.inflated, self.limits.max_ratio
                ),
            ));
        }
        Ok(n)
    }
}

/// Reads one object (the version it names) as items; every failure is an item (see the module
/// docs).
pub fn read_object(objects: &Objects, object: &ObjectRef) -> Items {
    let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
    let id = object.id();
    if !objects.filter.accepts(bucket, key) {
        tracing::info!(object = %id, "skipping object outside the pipeline's prefix/suffix filter");
        return Box::new(std::iter::empty());
    }
    let one = |item: SourceItem| -> Items { Box::new(std::iter::once(item)) };
    let unreadable = |reason: String| Unreadable { id: id.clone(), raw: String::new(), reason };
    let (name, gzip) = match key.strip_suffix(".gz") {
        Some(inner) => (inner, true),
        None => (key, false),
    };
    let Some(format) = Format::from_path(std::path::Path::new(name)) else {
        return one(SourceItem::Unreadable(unreadable(format!(
            "{id}: unknown format (expected .csv, .jsonl, .ndjson or .json, optionally .gz)"
        ))));
    };
    let raw = match objects.store.open(object) {
        Ok(r) => r,
        Err(OpenError::Missing(m)) => return one(SourceItem::Unreadable(unreadable(format!("{id}: {m}")))),
        Err(OpenError::Other(m)) => return one(SourceItem::Failed(unreadable(format!("{id}: {m}")))),
    };
    let compressed = Progress::default();
    let raw = Counting { inner: super::Transport(raw), progress: compressed.clone() };
    let decoded: Box<dyn Read + Send> = if gzip {
        let inflated = flate2::read::MultiGzDecoder::new(BufReader::new(raw));
        let limits = InflationLimits { max_ratio: objects.limits.max_expansion, ..InflationLimits::default() };
        Box::new(Inflation { inner: inflated, compressed, inflated: 0, limits })
    } else {
        Box::new(raw)
    };
    let mut reader = BufReader::with_capacity(256 * 1024, decoded);
    match reader.fill_buf() {
        Ok([]) => return one(SourceItem::Unreadable(unreadable(format!("{id}: the object is empty")))),
        Ok(_) => {}
        Err(e) if gzip && !super::is_retryable(&e) => {
            return one(SourceItem::Unreadable(unreadable(format!("{id}: not a gzip stream: {e}"))));
        }
        Err(e) => return one(SourceItem::Failed(unreadable(format!("{id}: cannot read: {e}")))),
    }
    match format {
        Format::Csv => {
            let mut attributes = vec![("s3_bucket".into(), bucket.into()), ("s3_key".into(), key.into())];
            if let Some(v) = &object.version {
                attributes.push(("s3_version".into(), v.clone()));
            }
            csv::read(reader, id, attributes, objects.limits.max_record_bytes)
        }
        Format::JsonLines => json::read_lines(reader, id, objects.limits.max_record_bytes),
        Format::Json => json::read_array(reader, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A gzip stream that expands far past what data compresses to is cut off as unreadable
    /// data, however small it is compressed.
    #[test]
    fn a_gzip_bomb_stops_at_its_expansion_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'x'; 4 * 1024 * 1024]).unwrap();
        let bomb = gz.finish().unwrap();
        let compressed = Progress::default();
        let raw = Counting { inner: std::io::Cursor::new(bomb), progress: compressed.clone() };
        let inflated = flate2::read::MultiGzDecoder::new(BufReader::new(raw));
        let limits = InflationLimits { free_bytes: 1024 * 1024, max_ratio: 200 };
        let mut bounded = Inflation { inner: inflated, compressed, inflated: 0, limits };
        let err = std::io::copy(&mut bounded, &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("more than 200 times (a gzip bomb?)"), "{err}");
        assert!(bounded.inflated < 2 * 1024 * 1024, "stopped near the limit: {}", bounded.inflated);

        // Ordinary data under the same limits reads to its end.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..50_000 {
            gz.write_all(format!("{{\"order\":\"o-{i}\",\"total\":{}}}\n", i * 7 % 1000).as_bytes()).unwrap();
        }
        let data = gz.finish().unwrap();
        let compressed = Progress::default();
        let raw = Counting { inner: std::io::Cursor::new(data), progress: compressed.clone() };
        let inflated = flate2::read::MultiGzDecoder::new(BufReader::new(raw));
        let mut bounded = Inflation { inner: inflated, compressed, inflated: 0, limits };
        assert!(std::io::copy(&mut bounded, &mut std::io::sink()).unwrap() > 1024 * 1024);
    }

    fn collect(objects: &Objects, key: &str) -> Vec<SourceItem> {
        read_object(objects, &ObjectRef::new("b", key)).collect()
    }

    #[test]
    fn local_objects_plain_gzip_empty_missing_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("a.csv"), "x,y\n1,2\n").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"x\":1}\n{\"x\":2}\n").unwrap();
        std::fs::write(b.join("a.jsonl.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(b.join("empty.csv"), "").unwrap();
        std::fs::write(b.join("bad.jsonl.gz"), "not gzip").unwrap();
        std::fs::write(b.join("a.txt"), "x").unwrap();
        let mut objects = Objects::local(dir.path());

        let rows = collect(&objects, "a.csv");
        assert!(
            matches!(&rows[..], [SourceItem::Record(r)] if r.id == "s3://b/a.csv#2" && r.body == r#"{"x":"1","y":"2"}"#)
        );
        let rows = collect(&objects, "a.jsonl.gz");
        assert_eq!(rows.len(), 2);
        assert!(matches!(&rows[1], SourceItem::Record(r) if r.id == "s3://b/a.jsonl.gz#2"));
        let reason = |items: Vec<SourceItem>| match &items[..] {
            [SourceItem::Unreadable(u)] => u.reason.clone(),
            other => panic!("expected one unreadable item, got {other:?}"),
        };
        assert_eq!(reason(collect(&objects, "empty.csv")), "s3://b/empty.csv: the object is empty");
        assert!(reason(collect(&objects, "bad.jsonl.gz")).contains("gzip"));
        assert!(reason(collect(&objects, "gone.csv")).contains("no such file"));
        assert!(reason(collect(&objects, "a.txt")).contains("unknown format"));

        objects.filter = ObjectFilter {
            prefix: "a".into(),
            suffixes: vec![".csv".into()],
            exclude: vec![("b".into(), "a.c".into())],
        };
        assert!(collect(&objects, "a.csv").is_empty(), "excluded by the output prefix");
        assert!(collect(&objects, "a.jsonl.gz").is_empty(), "wrong suffix");
        assert!(!objects.filter.accepts("b", "z.csv"), "wrong prefix");
        assert!(objects.filter.accepts("b", "ab.csv"));
    }
}
