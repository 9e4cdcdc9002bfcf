//! Sources: where records come from.
//!
//! A source is an iterator of [`SourceItem`]s, read lazily so memory stays flat however large
//! the input: a record, or an input that could not be read as one (a ragged CSV row, a line
//! that is not UTF-8 or not JSON), which carries its position and the reason and goes to the
//! dead-letter destination. Nothing read is ever silently dropped.
//!
//! Local files: CSV (header row -> JSON object of strings), JSON Lines, a JSON array, and real
//! Lambda payloads (an SQS event, an S3 event whose objects are looked up under a local root),
//! so production payloads can be replayed on a laptop.

pub mod csv;
pub mod json;
pub mod lambda;
pub mod objects;
pub mod resume;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::Record;

/// An input that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Where it was: `file#line`.
    pub id: String,
    /// The raw input, as far as it could be read (lossy UTF-8, capped at 64 KiB).
    pub raw: String,
    pub reason: String,
}

/// One item a source yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceItem {
    Record(Record),
    /// Cannot be read as a record, now or ever (bad data): goes to the dead-letter destination.
    Unreadable(Unreadable),
    /// Could not be read this time (an object store error, a dropped connection): the input it
    /// belongs to must be retried, so the caller reports it as a failure and does not
    /// acknowledge it.
    Failed(Unreadable),
}

impl SourceItem {
    /// The input's id (a record's, or the unreadable input's).
    pub fn id(&self) -> &str {
        match self {
            SourceItem::Record(r) => &r.id,
            SourceItem::Unreadable(u) | SourceItem::Failed(u) => &u.id,
        }
    }
}

/// A stream of items.
pub type Items = Box<dyn Iterator<Item = SourceItem> + Send>;

/// Why a whole input could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// The input formats weir reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
    /// A JSON array, or a Lambda event (decided by the first non-blank byte and its keys).
    Json,
}

impl Format {
    /// The format for a file name: `.csv`, `.jsonl`/`.ndjson`, `.json`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            Some(Format::Csv)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(Format::JsonLines)
        } else if name.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// Counts bytes read, for progress bars.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How much of an input weir holds at once (`[source]` in `weir.toml`): a record longer than
/// `max_record_bytes`, or a compressed object expanding more than `max_expansion` times its size
/// (past the first 256 MiB), is unreadable data with the reason, never memory without bound. An
/// object larger than `max_object_bytes` (stored, or decompressed) is not read (past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    pub max_record_bytes: u64,
    pub max_expansion: u64,
    pub max_object_bytes: u64,
}

impl SourceLimits {
    /// The largest `max_record_bytes` a pipeline may set (256 MiB).
    pub const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;
    /// The smallest `max_object_bytes` a pipeline may set (1 MiB).
    pub const MIN_OBJECT_BYTES: u64 = 1024 * 1024;
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits { max_record_bytes: 1024 * 1024, max_expansion: 200, max_object_bytes: 10 * 1024 * 1024 * 1024 }
    }
}

/// Options for [`open_file`].
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// Where the objects named by S3 events live locally: `<root>/<bucket>/<key>`. Defaults to
    /// the event file's directory. Ignored when `objects` is set.
    pub s3_root: Option<PathBuf>,
    /// Where the objects named by S3 events are read from (S3 itself, with `--aws`), and which.
    pub objects: Option<objects::Objects>,
    pub progress: Progress,
    pub limits: SourceLimits,
}

/// Opens a local file as a source, by its extension.
pub fn open_file(path: &Path, options: &OpenOptions) -> Result<Items, SourceError> {
    let format = Format::from_path(path).ok_or_else(|| SourceError::Format {
        path: path.to_path_buf(),
        message: "unknown input format; use .csv, .jsonl, .ndjson or .json".into(),
    })?;
    let file = File::open(path).map_err(|source| SourceError::Open { path: path.to_path_buf(), source })?;
    let reader = BufReader::with_capacity(256 * 1024, Counting { inner: file, progress: options.progress.clone() });
    let name = path.display().to_string();
    match format {
        Format::Csv => Ok(csv::read(reader, name, Vec::new(), options.limits.max_record_bytes)),
        Format::JsonLines => Ok(json::read_lines(reader, name, options.limits.max_record_bytes)),
        Format::Json => {
            let objects = options.objects.clone().unwrap_or_else(|| {
                let root =
                    options.s3_root.clone().unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
                objects::Objects { limits: options.limits, ..objects::Objects::local(root) }
            });
            lambda::read_json(reader, path, &objects)
        }
    }
}

/// An error from the transport under a stream (the object store, a dropped connection), as
/// opposed to one from decoding what arrived: marks errors so readers can tell them apart.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(std::io::Error);

/// Wraps a raw byte stream so its errors are known to be transport errors.
pub(crate) struct Transport<R>(pub R);

impl<R: Read> Read for Transport<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| std::io::Error::new(e.kind(), TransportError(e)))
    }
}

/// Whether a read error may pass on a retry: a transport error, or any I/O error that is not
/// about the bytes themselves (corrupt or truncated compressed data, invalid data are not).
pub(crate) fn is_retryable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    e.get_ref().is_some_and(|inner| inner.is::<TransportError>())
        || !matches!(e.kind(), InvalidData | InvalidInput | UnexpectedEof)
}

/// Caps raw input kept for the dead-letter record.
pub(crate) fn cap_raw(bytes: &[u8]) -> String {
    const MAX: usize = 64 * 1024;
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned()
}
