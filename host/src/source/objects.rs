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

use super::resume::{Marks, Resume, Tell};
use super::{Counting, Format, Items, Progress, SourceItem, SourceLimits, Unreadable, csv, json};

/// Why an object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// It is not there (deleted before it was read): retrying will not help.
    Missing(String),
    /// It is no longer the content a resume was made for (its ETag changed).
    Changed(String),
    /// Anything else: retrying may help.
    Other(String),
}

/// Where to start reading an object: `offset` bytes in, provided it still has `etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub etag: Option<String>,
}

/// An object opened for reading.
pub struct Opened {
    /// Its bytes, from the start or the range asked for.
    pub body: Box<dyn Read + Send>,
    /// Its ETag, if the store has them: what a resume binds to.
    pub etag: Option<String>,
    /// Its whole size in bytes, when known.
    pub size: Option<u64>,
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
    /// Opens the object (the version it names, if any) for reading, from its start or from
    /// `range` (past the end: an empty stream). The stream may fail part way; decoders report
    /// that.
    fn open(&self, object: &ObjectRef, range: Option<&Range>) -> Result<Opened, OpenError>;
}

/// Objects as files under `<root>/<bucket>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    pub root: PathBuf,
}

impl ObjectStore for LocalObjects {
    /// A local tree keeps one version of each key, the file, and no ETags.
    fn open(&self, object: &ObjectRef, range: Option<&Range>) -> Result<Opened, OpenError> {
        use std::io::{Seek, SeekFrom};
        let path = self.root.join(&object.bucket).join(&object.key);
        let other = |e: std::io::Error| OpenError::Other(format!("cannot open {}: {e}", path.display()));
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::Missing(format!("no such file {}", path.display())));
            }
            Err(e) => return Err(other(e)),
        };
        let size = file.metadata().map_err(other)?.len();
        if let Some(range) = range {
            file.seek(SeekFrom::Start(range.offset.min(size))).map_err(other)?;
        }
        Ok(Opened { body: Box::new(file), etag: None, size: Some(size) })
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
    /// A range is a ranged GET (`Range: bytes=N-`) conditional on the ETag (`If-Match`).
    fn open(&self, object: &ObjectRef, range: Option<&Range>) -> Result<Opened, OpenError> {
        let request = self.client.get_object().bucket(&object.bucket).key(&object.key);
        let request = request
            .set_version_id(object.version.clone())
            .set_range(range.map(|r| format!("bytes={}-", r.offset)))
            .set_if_match(range.and_then(|r| r.etag.clone()));
        let response = self.runtime.block_on(request.send());
        let code = |e: &aws_sdk_s3::error::SdkError<_, _>| {
            e.as_service_error()
                .and_then(|s: &aws_sdk_s3::operation::get_object::GetObjectError| s.meta().code())
                .map(str::to_string)
        };
        match response {
            Ok(out) => {
                // A ranged answer's Content-Range says the whole size: `bytes 10-99/100`.
                let whole = out.content_range().and_then(|r| r.rsplit('/').next()?.parse().ok());
                let size = whole.or(out.content_length().and_then(|n| u64::try_from(n).ok()));
                let etag = out.e_tag().map(str::to_string);
                let body = out.body.into_async_read();
                let body = Box::new(tokio_util::io::SyncIoBridge::new_with_handle(body, self.runtime.clone()));
                Ok(Opened { body, etag, size })
            }
            // Resumed at its very end: nothing is left to read.
            Err(e) if range.is_some() && code(&e).as_deref() == Some("InvalidRange") => {
                Ok(Opened { body: Box::new(std::io::empty()), etag: range.and_then(|r| r.etag.clone()), size: None })
            }
            Err(e) if code(&e).as_deref() == Some("PreconditionFailed") => Err(OpenError::Changed(format!(
                "{}: its ETag is not the one it was read with",
                crate::aws::describe(&e)
            ))),
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
    /// Past this many bytes out, whatever the ratio (the pipeline's `max_object_bytes`).
    max_bytes: u64,
}

impl Default for InflationLimits {
    fn default() -> Self {
        InflationLimits {
            free_bytes: 256 * 1024 * 1024,
            max_ratio: 200,
            max_bytes: SourceLimits::default().max_object_bytes,
        }
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
        if self.inflated > self.limits.max_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "decompressed past the pipeline's [source] max_object_bytes ({}); not read further",
                    self.limits.max_bytes
                ),
            ));
        }
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
    read_object_from(objects, object, None, &Tell::default()).0
}

/// Reads a unit of objects (the ones a message names) in order, from `from` when it resumes one,
/// and marks each item's place in `marks` (see [`super::resume`]).
pub fn read_unit(refs: Vec<ObjectRef>, objects: Objects, from: Option<Resume>, marks: Marks) -> Items {
    let start = from.as_ref().map_or(0, |r| r.object);
    Box::new(refs.into_iter().enumerate().skip(start).flat_map(move |(i, object)| {
        let tell = Tell::default();
        let (items, etag, mut count) =
            read_object_from(&objects, &object, from.as_ref().filter(|r| r.object == i), &tell);
        marks.open(i, etag, tell);
        let marks = marks.clone();
        items.inspect(move |_| {
            count += 1;
            marks.item(i, count);
        })
    }))
}

/// [`read_object`], resumed at `from` when given: with a ranged read from its offset if the
/// format can start there (plain CSV and JSON Lines) and the object still has the ETag it was
/// read with; else from the start, its done items read again and skipped. An object that
/// changed since is read from its start. Returns the items, the object's ETag, and how many of
/// its items come before the first one returned.
fn read_object_from(
    objects: &Objects,
    object: &ObjectRef,
    from: Option<&Resume>,
    tell: &Tell,
) -> (Items, Option<String>, u64) {
    let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
    let id = object.id();
    let one = |item: SourceItem| -> (Items, Option<String>, u64) { (Box::new(std::iter::once(item)), None, 0) };
    if !objects.filter.accepts(bucket, key) {
        tracing::info!(object = %id, "skipping object outside the pipeline's prefix/suffix filter");
        return (Box::new(std::iter::empty()), None, 0);
    }
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
    let seekable = !gzip && matches!(format, Format::Csv | Format::JsonLines);
    let at = from.and_then(|r| r.at.clone()).filter(|_| seekable);
    let range = at.as_ref().map(|a| Range { offset: a.offset, etag: from.and_then(|r| r.etag.clone()) });
    let opened = match objects.store.open(object, range.as_ref()) {
        Err(OpenError::Changed(m)) => {
            tracing::info!(object = %id, reason = %m, "the object changed since its checkpoint; reading it from its start");
            return read_object_from(objects, object, None, tell);
        }
        other => other,
    };
    let opened = match opened {
        Ok(o) => o,
        Err(OpenError::Missing(m)) => return one(SourceItem::Unreadable(unreadable(format!("{id}: {m}")))),
        Err(OpenError::Changed(m) | OpenError::Other(m)) => {
            return one(SourceItem::Failed(unreadable(format!("{id}: {m}"))));
        }
    };
    let max = objects.limits.max_object_bytes;
    if let Some(size) = opened.size.filter(|&size| size > max) {
        return one(SourceItem::Unreadable(unreadable(format!(
            "{id}: {size} bytes, over the pipeline's [source] max_object_bytes ({max}); not read"
        ))));
    }
    if let (Some(r), None) = (from, &range)
        && r.etag.is_some()
        && opened.etag != r.etag
    {
        // Resumed by count, but not the content the count was made for.
        tracing::info!(object = %id, "the object changed since its checkpoint; reading it from its start");
        return read_object_from(objects, object, None, tell);
    }
    let etag = opened.etag.clone();
    let compressed = Progress::default();
    let raw = Counting { inner: super::Transport(opened.body), progress: compressed.clone() };
    let decoded: Box<dyn Read + Send> = if gzip {
        let inflated = flate2::read::MultiGzDecoder::new(BufReader::new(raw));
        let limits =
            InflationLimits { max_ratio: objects.limits.max_expansion, max_bytes: max, ..InflationLimits::default() };
        Box::new(Inflation { inner: inflated, compressed, inflated: 0, limits })
    } else {
        Box::new(raw)
    };
    let mut reader = BufReader::with_capacity(256 * 1024, decoded);
    if range.is_none() {
        match reader.fill_buf() {
            Ok([]) => return one(SourceItem::Unreadable(unreadable(format!("{id}: the object is empty")))),
            Ok(_) => {}
            Err(e) if gzip && !super::is_retryable(&e) => {
                return one(SourceItem::Unreadable(unreadable(format!("{id}: not a gzip stream: {e}"))));
            }
            Err(e) => return one(SourceItem::Failed(unreadable(format!("{id}: cannot read: {e}")))),
        }
    }
    // Only a reader of the object's own bytes can say where in the object it is.
    let told = if seekable { tell.clone() } else { Tell::default() };
    let items = match format {
        Format::Csv => {
            let mut attributes = vec![("s3_bucket".into(), bucket.into()), ("s3_key".into(), key.into())];
            if let Some(v) = &object.version {
                attributes.push(("s3_version".into(), v.clone()));
            }
            csv::read_from(reader, id.clone(), attributes, objects.limits.max_record_bytes, at, told)
        }
        Format::JsonLines => json::read_lines_from(reader, id.clone(), objects.limits.max_record_bytes, at, told),
        Format::Json => json::read_array(reader, id.clone()),
    };
    match from {
        Some(r) if range.is_some() => (items, etag, r.items),
        Some(r) => {
            // Read again from the start: skip exactly the items done, and nothing else (a read
            // failure among them is the unit's failure).
            let mut items = items.peekable();
            let mut skipped = 0;
            while skipped < r.items && items.next_if(|item| !matches!(item, SourceItem::Failed(_))).is_some() {
                skipped += 1;
            }
            if skipped < r.items && items.peek().is_none() {
                tracing::info!(object = %id, skipped, done = r.items, "the object has fewer items than its checkpoint counts as done: it changed; reading it from its start");
                return read_object_from(objects, object, None, tell);
            }
            (Box::new(items), etag, skipped)
        }
        None => (items, etag, 0),
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
        let limits = InflationLimits { free_bytes: 1024 * 1024, max_ratio: 200, max_bytes: u64::MAX };
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

    /// An open: the key and the offset asked for.
    type Open = (String, Option<u64>);

    /// Local objects with ETags (the file's length and first bytes) and If-Match, recording
    /// every open and the offset it asked for.
    #[derive(Clone, Default)]
    struct Recorded {
        root: PathBuf,
        opens: Arc<std::sync::Mutex<Vec<Open>>>,
    }

    impl ObjectStore for Recorded {
        fn open(&self, object: &ObjectRef, range: Option<&Range>) -> Result<Opened, OpenError> {
            self.opens.lock().unwrap().push((object.key.clone(), range.map(|r| r.offset)));
            let bytes = std::fs::read(self.root.join(&object.bucket).join(&object.key)).unwrap();
            let etag = format!("\"{}-{:?}\"", bytes.len(), &bytes[..bytes.len().min(8)]);
            if let Some(wanted) = range.and_then(|r| r.etag.as_ref())
                && *wanted != etag
            {
                return Err(OpenError::Changed("PreconditionFailed".into()));
            }
            let rest = bytes[range.map_or(0, |r| r.offset as usize).min(bytes.len())..].to_vec();
            Ok(Opened { body: Box::new(std::io::Cursor::new(rest)), etag: Some(etag), size: Some(bytes.len() as u64) })
        }
    }

    fn ids(items: impl Iterator<Item = SourceItem>) -> Vec<String> {
        items.map(|i| i.id().to_string()).collect()
    }

    /// A unit resumed at a checkpoint reads on from the offset after its last done item (a
    /// ranged read, bound to the ETag) and yields exactly the items a whole read yields after
    /// it; compressed objects and JSON arrays re-read and skip; finished objects of the unit are
    /// not opened; a changed object is read from its start.
    #[test]
    fn a_resumed_unit_reads_on_from_its_offset_or_skips_what_was_done() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        let csv: String =
            std::iter::once("id,v\r\n".to_string()).chain((0..10).map(|i| format!("{i},\"x\ny{i}\"\r\n"))).collect();
        std::fs::write(b.join("o.csv"), &csv).unwrap();
        let lines: String = (0..10).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(lines.as_bytes()).unwrap();
        std::fs::write(b.join("o.jsonl.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(b.join("o.jsonl"), &lines).unwrap();
        let store = Recorded { root: dir.path().to_path_buf(), ..Recorded::default() };
        let objects = Objects { store: Arc::new(store.clone()), ..Objects::local(dir.path()) };
        let unit = |keys: &[&str]| keys.iter().map(|k| ObjectRef::new("b", *k)).collect::<Vec<_>>();

        for (keys, done, ranged) in
            [(&["o.csv"][..], 4, true), (&["o.jsonl.gz"][..], 4, false), (&["o.csv", "o.jsonl"][..], 13, true)]
        {
            let whole = ids(read_unit(unit(keys), objects.clone(), None, Marks::default()));
            let marks = Marks::default();
            let mut first = read_unit(unit(keys), objects.clone(), None, marks.clone());
            for _ in 0..done {
                first.next().unwrap();
            }
            marks.confirm(done as u64);
            let resume = marks.resume().unwrap();
            assert_eq!(resume.at.is_some(), ranged, "{keys:?}: {resume:?}");
            store.opens.lock().unwrap().clear();
            let rest = ids(read_unit(unit(keys), objects.clone(), Some(resume.clone()), Marks::default()));
            assert_eq!(rest, whole[done..], "{keys:?} resumed after {done}");
            let opens = store.opens.lock().unwrap().clone();
            let last = keys[resume.object].to_string();
            assert_eq!(opens[0], (last, resume.at.as_ref().map(|a| a.offset)), "{keys:?}: only from the resume on");
            assert_eq!(opens.len(), keys.len() - resume.object);
        }

        // The object changed since (another ETag): read from its start, every row.
        let marks = Marks::default();
        let mut first = read_unit(unit(&["o.csv"]), objects.clone(), None, marks.clone());
        first.next().unwrap();
        marks.confirm(1);
        let resume = marks.resume().unwrap();
        std::fs::write(b.join("o.csv"), csv.replace("y1", "changed")).unwrap();
        let again = ids(read_unit(unit(&["o.csv"]), objects.clone(), Some(resume), Marks::default()));
        assert_eq!(again.len(), 10, "{again:?}");
    }
}
