//! CSV: a header row, then one record per row as a JSON object of strings (header -> value).
//!
//! Streams with the `csv` crate: CRLF, LF or lone CR line ends, quoted fields with embedded
//! commas, quotes and newlines, a UTF-8 byte-order mark before the header. Blank lines are
//! skipped; a row of one empty quoted field (`""`) is a row. A row with a different number of
//! fields than the header, or bytes that are not UTF-8, becomes an [`Unreadable`] naming the
//! line; the rest of the file goes on. Record ids are `name#line` (the line the row's first
//! field is on, 1-based, header is line 1; a line ends at a LF, a CRLF or a lone CR). A record
//! longer than the limit (`max_record_bytes`, counted from the end of the row before; an
//! unterminated quote swallows the rest of the file into one field) is never held past it: it
//! is one unreadable item naming the line where it starts, and reading resynchronises at the
//! first line break past the limit. Whether a row is over the limit does not depend on how
//! reads split the file.
//!
//! [`read_from`] starts mid-file (a resume, see [`super::resume`]): at a byte offset, after a
//! number of lines, with the header read before; it reports its place after every item.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use super::resume::{At, Place, Tell};
use super::{Items, SourceItem, Unreadable, cap_raw};
use crate::record::Record;

/// Reads CSV rows; `attributes` are added to every record (e.g. the object's metadata). A
/// record is at most `max_record` bytes (its fields and separators, quotes included).
pub fn read<R: Read + Send + 'static>(
    reader: R,
    name: String,
    attributes: Vec<(String, String)>,
    max_record: u64,
) -> Items {
    read_from(reader, name, attributes, max_record, None, Tell::default())
}

/// [`read`], of a `reader` that starts at `from` (its offset, lines before and header) when
/// given, else at the start of the file; `tell` hears the place after each item.
pub fn read_from<R: Read + Send + 'static>(
    reader: R,
    name: String,
    attributes: Vec<(String, String)>,
    max_record: u64,
    from: Option<At>,
    tell: Tell,
) -> Items {
    let base = from.as_ref().map_or(0, |a| a.offset);
    let mut index = LineIndex { passed: from.as_ref().map_or(0, |a| a.lines), seen: base, ..LineIndex::default() };
    if from.as_ref().is_some_and(|a| a.after_cr && a.offset > 0 && a.lines > 0) {
        // The CR before `base` was counted: stand it back in, so a LF at `base` joins it.
        index.passed -= 1;
        index.breaks.push_back((base - 1, 1));
        index.after_cr = true;
    }
    let lines = Arc::new(Mutex::new(index));
    let record_start = Arc::new(AtomicU64::new(base));
    let newlines = Newlines {
        inner: reader,
        offset: base,
        index: lines.clone(),
        record_start: record_start.clone(),
        max_record,
        pushback: Vec::new(),
        first: if base == 0 { First::File } else { First::Resumed },
    };
    // No header yet when the first rows were over the bound (a header has at least one name).
    let mut header: Option<Vec<String>> = from.map(|a| a.header).filter(|h| !h.is_empty());
    if let Some(h) = &header {
        tell.set_header(h);
    }
    let mut parser = Parser::new(newlines, base);
    let mut row = ::csv::ByteRecord::new();
    let mut failed = false;
    Box::new(std::iter::from_fn(move || {
        let item = 'read: loop {
            if failed {
                break 'read None;
            }
            // The parser stands past the last row: where this one (and any blank lines before
            // it) starts. Line breaks before it are no longer needed.
            let start = parser.position();
            record_start.store(start, Ordering::Relaxed);
            lock(&lines).forget_before(start);
            let read = parser.read(&mut row);
            // The line the row's first byte is on (the csv crate skips blank lines before it).
            let line = {
                let index = lock(&lines);
                index.line_of(index.content_start(start))
            };
            let id = format!("{name}#{line}");
            let too_long = || format!("line {line}: a record longer than {max_record} bytes (an unterminated quote?)");
            match read {
                Ok(false) => break 'read None,
                Err(e) if matches!(e.kind(), ::csv::ErrorKind::Io(io) if is_too_long(io)) => {
                    // Over the bound mid-row: skip to the next line break and read on from there.
                    match parser.resync() {
                        Ok(next) => {
                            let next_line = lock(&lines).line_after(next);
                            let reason = format!("{}; skipped, reading on at line {next_line}", too_long());
                            break 'read Some(SourceItem::Unreadable(Unreadable { id, raw: String::new(), reason }));
                        }
                        Err(e) => {
                            failed = true;
                            let reason = format!("{}; cannot read past it: {e}", too_long());
                            let unreadable = Unreadable { id, raw: String::new(), reason };
                            break 'read Some(if super::is_retryable(&e) {
                                SourceItem::Failed(unreadable)
                            } else {
                                SourceItem::Unreadable(unreadable)
                            });
                        }
                    }
                }
                Err(e) => {
                    // Errors end the file; report where. An I/O error (a dropped connection
                    // mid-object) may pass on a retry; anything else is the data's.
                    failed = true;
                    let unreadable =
                        Unreadable { id, raw: String::new(), reason: format!("cannot read past line {line}: {e}") };
                    break 'read Some(if matches!(e.kind(), ::csv::ErrorKind::Io(io) if super::is_retryable(io)) {
                        SourceItem::Failed(unreadable)
                    } else {
                        SourceItem::Unreadable(unreadable)
                    });
                }
                Ok(true) => {}
            }
            // A row that arrived whole in one read is held to the same bound as one that did
            // not (then the read above refused): what is unreadable does not depend on how the
            // network split the object.
            let end = parser.position();
            if end - start > max_record {
                let next_line = lock(&lines).line_after(end);
                let reason = format!("{}; skipped, reading on at line {next_line}", too_long());
                break 'read Some(SourceItem::Unreadable(Unreadable { id, raw: String::new(), reason }));
            }
            // The row re-encoded as CSV (quoting as needed), for the dead-letter record.
            let raw = || {
                let mut w = ::csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
                let bytes = w.write_byte_record(&row).ok().and_then(|()| w.into_inner().ok()).unwrap_or_default();
                cap_raw(bytes.strip_suffix(b"\n").unwrap_or(&bytes))
            };
            match &header {
                None => {
                    let mut names = Vec::with_capacity(row.len());
                    for (i, field) in row.iter().enumerate() {
                        let field = if i == 0 { field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field) } else { field };
                        match std::str::from_utf8(field) {
                            Ok(s) => names.push(s.trim().to_string()),
                            Err(_) => {
                                failed = true;
                                break 'read Some(SourceItem::Unreadable(Unreadable {
                                    id,
                                    raw: raw(),
                                    reason: format!("header (line {line}) is not UTF-8; the file cannot be read"),
                                }));
                            }
                        }
                    }
                    // Two columns of one name would leave one value out of every record.
                    let mut seen = std::collections::HashMap::with_capacity(names.len());
                    for (i, n) in names.iter().enumerate() {
                        if let Some(first) = seen.insert(n.as_str(), i) {
                            failed = true;
                            break 'read Some(SourceItem::Unreadable(Unreadable {
                                id,
                                raw: raw(),
                                reason: format!(
                                    "header (line {line}) names `{n}` twice (columns {} and {}); the file cannot be read",
                                    first + 1,
                                    i + 1
                                ),
                            }));
                        }
                    }
                    tell.set_header(&names);
                    header = Some(names);
                    continue;
                }
                Some(names) => {
                    // Blank lines never get here (the csv crate skips them); a row of one empty
                    // quoted field (`""`) is a row, as the csv crate's writer means it.
                    if row.len() != names.len() {
                        break 'read Some(SourceItem::Unreadable(Unreadable {
                            id,
                            raw: raw(),
                            reason: format!(
                                "line {line}: expected {} fields (as in the header), found {}",
                                names.len(),
                                row.len()
                            ),
                        }));
                    }
                    let mut object = Map::with_capacity(names.len());
                    for (i, (key, field)) in names.iter().zip(row.iter()).enumerate() {
                        match std::str::from_utf8(field) {
                            Ok(s) => {
                                object.insert(key.clone(), Value::String(s.to_string()));
                            }
                            Err(_) => {
                                break 'read Some(SourceItem::Unreadable(Unreadable {
                                    id,
                                    raw: raw(),
                                    reason: format!("line {line}: field {} (`{key}`) is not UTF-8", i + 1),
                                }));
                            }
                        }
                    }
                    let body = Value::Object(object).to_string();
                    let record = Record { id, body, attributes: attributes.clone() };
                    break 'read Some(SourceItem::Record(record));
                }
            }
        };
        // After each item, where the next one starts (the parser stands past the row).
        if failed {
            tell.lose();
        } else {
            tell.set_place(lock(&lines).place(parser.position()));
        }
        item
    }))
}

fn lock(index: &Mutex<LineIndex>) -> std::sync::MutexGuard<'_, LineIndex> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The csv parser over the byte stream, and where in the file it started (it counts from 0).
struct Parser<R> {
    csv: Option<::csv::Reader<Newlines<R>>>,
    base: u64,
}

impl<R: Read> Parser<R> {
    fn new(newlines: Newlines<R>, base: u64) -> Self {
        Parser { csv: Some(Self::csv(newlines)), base }
    }

    fn csv(newlines: Newlines<R>) -> ::csv::Reader<Newlines<R>> {
        ::csv::ReaderBuilder::new().flexible(true).has_headers(false).from_reader(newlines)
    }

    /// Where in the file the next record starts.
    fn position(&self) -> u64 {
        self.base + self.csv.as_ref().map_or(0, |c| c.position().byte())
    }

    fn read(&mut self, row: &mut ::csv::ByteRecord) -> ::csv::Result<bool> {
        match &mut self.csv {
            Some(csv) => csv.read_byte_record(row),
            None => Ok(false),
        }
    }

    /// After a record over the bound: drops it, skips to the next line break, and starts a
    /// new parser there (the old one is mid-record). Returns where it starts.
    fn resync(&mut self) -> std::io::Result<u64> {
        let Some(csv) = self.csv.take() else { return Ok(self.base) };
        // The parser asked for more bytes and was refused, so its buffer holds none unread.
        let mut newlines = csv.into_inner();
        newlines.skip_line()?;
        self.base = newlines.offset;
        newlines.record_start.store(self.base, Ordering::Relaxed);
        newlines.first = First::Resumed; // a new parser: U+FEFF here is data
        self.csv = Some(Self::csv(newlines));
        Ok(self.base)
    }
}

/// The line breaks read but not yet passed by the parser, and how many were passed: enough to
/// turn a record's byte offset into its line number in bounded memory. A line ends at a LF, a
/// CRLF or a lone CR (the csv crate ends a row at each; editors end a line at each).
#[derive(Debug, Default)]
struct LineIndex {
    /// `(offset, length)` of each break: 1 for LF or CR, 2 for CRLF.
    breaks: VecDeque<(u64, u64)>,
    passed: u64,
    /// The offset after the last byte seen, and whether that byte was a CR (a LF after it
    /// belongs to the same break).
    seen: u64,
    after_cr: bool,
}

impl LineIndex {
    /// Notes the breaks in `bytes`, which start `offset` bytes into the file.
    fn saw(&mut self, offset: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let at = offset + i as u64;
            match b {
                b'\n' if self.after_cr => {
                    // The LF of a CRLF; if its CR was passed already, so is the break.
                    if let Some(last) = self.breaks.back_mut().filter(|(cr, _)| cr + 1 == at) {
                        last.1 = 2;
                    }
                }
                b'\n' | b'\r' => self.breaks.push_back((at, 1)),
                _ => {}
            }
            self.after_cr = *b == b'\r';
        }
        self.seen = offset + bytes.len() as u64;
    }

    /// Drops the breaks that end at or before `offset` (the parser is past them), but not a CR
    /// that is the last byte seen: a LF after it makes it a CRLF, which rows after it skip.
    fn forget_before(&mut self, offset: u64) {
        let open_cr = self.after_cr.then(|| self.seen - 1);
        while self.breaks.front().is_some_and(|&(at, len)| at + len <= offset && Some(at) != open_cr) {
            self.breaks.pop_front();
            self.passed += 1;
        }
    }

    /// The 1-based line byte `offset` is on.
    fn line_of(&self, offset: u64) -> u64 {
        self.passed + self.breaks.partition_point(|&(at, len)| at + len <= offset) as u64 + 1
    }

    /// The first byte at or after `offset` that is not part of a line break (where a row
    /// starting at `offset` after blank lines has its first field).
    fn content_start(&self, mut offset: u64) -> u64 {
        loop {
            let i = self.breaks.partition_point(|&(at, _)| at <= offset);
            match i.checked_sub(1).map(|i| self.breaks[i]) {
                Some((at, len)) if offset < at + len => offset = at + len,
                _ => return offset,
            }
        }
    }

    /// The line after the break at `offset` (the parser may stand on the LF of a CRLF).
    fn line_after(&self, offset: u64) -> u64 {
        let i = self.breaks.partition_point(|&(at, _)| at < offset);
        match i.checked_sub(1).map(|i| self.breaks[i]) {
            Some((at, len)) if offset < at + len => self.line_of(at + len),
            _ => self.line_of(offset),
        }
    }

    /// A place to start a reader for the row at `offset`. Right after a CR whose next byte is
    /// unread it may be a CRLF: the place says so, and a reader started there lets a LF join it.
    fn place(&self, offset: u64) -> Place {
        let after_cr = self.after_cr && self.seen == offset && offset > 0;
        Place { offset, lines: self.line_of(offset) - 1, after_cr }
    }
}

/// The error of a record over the bound.
#[derive(Debug, thiserror::Error)]
#[error("a record longer than {0} bytes (an unterminated quote?)")]
struct TooLong(u64);

fn is_too_long(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLong>())
}

/// Records where each newline is as bytes go by, and refuses to read more than `max_record`
/// bytes past the start of the record being parsed (the parser would hold them all).
struct Newlines<R> {
    inner: R,
    /// Bytes of the file passed to the parser (or skipped), counting from its start.
    offset: u64,
    index: Arc<Mutex<LineIndex>>,
    record_start: Arc<AtomicU64>,
    max_record: u64,
    /// Bytes read past a skipped line's end, to be read next.
    pushback: Vec<u8>,
    /// Whether anything was read yet, and from where.
    first: First,
}

/// What the first read of a reader must take care of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// At the start of the file: a byte-order mark.
    File,
    /// Mid-file: a row that starts with U+FEFF (the same bytes).
    Resumed,
    Done,
}

impl<R: Read> Newlines<R> {
    fn index(&self, bytes: &[u8]) {
        lock(&self.index).saw(self.offset, bytes);
    }

    /// Reads past the next line break (LF or CR; or to the end), holding nothing.
    fn skip_line(&mut self) -> std::io::Result<()> {
        let mut chunk = std::mem::take(&mut self.pushback);
        loop {
            if chunk.is_empty() {
                chunk.resize(64 * 1024, 0);
                let n = self.inner.read(&mut chunk)?;
                chunk.truncate(n);
                if n == 0 {
                    return Ok(());
                }
            }
            match chunk.iter().position(|b| matches!(b, b'\n' | b'\r')) {
                Some(at) => {
                    self.index(&chunk[..=at]);
                    self.offset += at as u64 + 1;
                    self.pushback = chunk.split_off(at + 1);
                    return Ok(());
                }
                None => {
                    self.offset += chunk.len() as u64;
                    chunk.clear();
                }
            }
        }
    }
}

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.record_start.load(Ordering::Relaxed);
        let used = self.offset.saturating_sub(start);
        if used > self.max_record {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, TooLong(self.max_record)));
        }
        // Never past the bound's first byte: the parser is refused at the same byte however
        // reads split the object, so reading resynchronises at the same line break.
        let room = usize::try_from(self.max_record - used).unwrap_or(usize::MAX).saturating_add(1);
        let mut cap = buf.len().min(room);
        let first = if cap == 0 { self.first } else { std::mem::replace(&mut self.first, First::Done) };
        if first == First::Resumed {
            // Mid-file (a resume, a resync) a row may begin with U+FEFF: a first read of one
            // byte keeps the csv crate from taking it for a byte-order mark.
            cap = cap.min(1);
        }
        let buf = &mut buf[..cap];
        let n = if !self.pushback.is_empty() {
            let n = buf.len().min(self.pushback.len());
            buf[..n].copy_from_slice(&self.pushback[..n]);
            self.pushback.drain(..n);
            n
        } else if first == First::File && buf.len() >= 4 {
            // The csv crate strips a byte-order mark only when its first read holds all three
            // bytes, and takes a first read of only those for the end of the file: the first
            // read gets at least four (or the whole file), however the network splits them.
            let mut n = 0;
            while n < 4 {
                match self.inner.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            n
        } else {
            self.inner.read(buf)?
        };
        self.index(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &[u8]) -> Vec<SourceItem> {
        read(std::io::Cursor::new(input.to_vec()), "t.csv".into(), vec![], 1 << 20).collect()
    }

    fn body(item: &SourceItem) -> Value {
        match item {
            SourceItem::Record(r) => serde_json::from_str(&r.body).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quirks_bom_crlf_quotes_and_embedded_newlines() {
        let input = b"\xEF\xBB\xBFid,note,amount\r\n1,\"a, \"\"quoted\"\"\nnote\",3.5\r\n2,plain,4\r\n";
        let got = items(input);
        assert_eq!(got.len(), 2);
        assert_eq!(body(&got[0]), serde_json::json!({"id":"1","note":"a, \"quoted\"\nnote","amount":"3.5"}));
        let SourceItem::Record(first) = &got[0] else { panic!() };
        let SourceItem::Record(second) = &got[1] else { panic!() };
        assert_eq!(first.id, "t.csv#2");
        assert_eq!(second.id, "t.csv#4", "line numbers count the embedded newline");
        let lf: Vec<SourceItem> = items(b"a\n1\n\n2\n");
        let ids: Vec<&str> = lf
            .iter()
            .map(|i| match i {
                SourceItem::Record(r) => r.id.as_str(),
                _ => "?",
            })
            .collect();
        assert_eq!(ids, ["t.csv#2", "t.csv#4"], "blank lines count too");
    }

    #[test]
    fn ragged_and_non_utf8_rows_are_reported_and_the_rest_goes_on() {
        let input = b"a,b\n1,2\n3\n4,\xff\n5,6\n";
        let got = items(input);
        assert_eq!(got.len(), 4);
        assert!(
            matches!(&got[1], SourceItem::Unreadable(u) if u.id == "t.csv#3" && u.reason == "line 3: expected 2 fields (as in the header), found 1")
        );
        assert!(matches!(&got[2], SourceItem::Unreadable(u) if u.reason == "line 4: field 2 (`b`) is not UTF-8"));
        assert_eq!(body(&got[3]), serde_json::json!({"a":"5","b":"6"}));
    }

    /// An unterminated quote would make the rest of the file one field: it is cut at the
    /// bound, in bounded memory, as one unreadable item naming where it starts, and the rows
    /// after the next line break past the bound are read as usual.
    #[test]
    fn a_record_over_the_bound_is_unreadable_and_reading_resynchronises() {
        let mut input = b"a,b\n1,2\n3,\"never closed\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\n4,5\n6,7\n");
        let reader = std::io::BufReader::with_capacity(64, std::io::Cursor::new(input));
        let got: Vec<SourceItem> = read(reader, "t.csv".into(), vec![], 1024).collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(body(&got[0]), serde_json::json!({"a":"1","b":"2"}));
        let reason = "line 3: a record longer than 1024 bytes (an unterminated quote?); skipped, reading on at line 5";
        assert!(
            matches!(&got[1], SourceItem::Unreadable(u) if u.id == "t.csv#3" && u.reason == reason),
            "{:?}",
            got[1]
        );
        assert!(matches!(&got[2], SourceItem::Record(r) if r.id == "t.csv#5"), "{:?}", got[2]);
        assert_eq!(body(&got[3]), serde_json::json!({"a":"6","b":"7"}));

        // A long line with no break after it: the rest of the file is the one unreadable item.
        let mut input = b"a,b\n1,2\n".to_vec();
        input.extend(std::iter::repeat_n(b'y', 5000));
        let got: Vec<SourceItem> = read(std::io::Cursor::new(input), "t.csv".into(), vec![], 1024).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[1], SourceItem::Unreadable(u) if u.id == "t.csv#3"));
    }

    /// Started at a row's offset with the header read before, a reader yields the same rows with
    /// the same ids as one reading the whole file, and says where each next row starts.
    #[test]
    fn a_reader_started_mid_file_continues_the_ids_and_reports_its_place() {
        let input = b"\xEF\xBB\xBFid,v\r\n1,\"a\nb\"\r\n2,x\r\n\r\n3,y\r\n4,z\r\n".to_vec();
        let tell = Tell::default();
        let whole: Vec<(SourceItem, (u64, u64))> = {
            let mut items =
                read_from(std::io::Cursor::new(input.clone()), "t.csv".into(), vec![], 1024, None, tell.clone());
            std::iter::from_fn(|| items.next().map(|i| (i, tell.place().unwrap()))).collect()
        };
        assert_eq!(whole.len(), 4);
        for k in 1..whole.len() {
            let (offset, lines) = whole[k - 1].1;
            let at = At { offset, lines, header: vec!["id".into(), "v".into()], after_cr: false };
            let rest = input[offset as usize..].to_vec();
            let tail: Vec<SourceItem> =
                read_from(std::io::Cursor::new(rest), "t.csv".into(), vec![], 1024, Some(at), Tell::default())
                    .collect();
            let expected: Vec<SourceItem> = whole[k..].iter().map(|(i, _)| i.clone()).collect();
            assert_eq!(tail, expected, "started after item {k}");
        }
    }

    /// A reader that hands out at most `chunk` bytes per read.
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    proptest::proptest! {
        /// From the place told after any item (a checkpoint), a reader started on the rest of
        /// the file yields exactly the items after it, ids included: CR, LF and CRLF breaks split
        /// anywhere by the reads, blank lines, over-long rows.
        #[test]
        fn a_reader_started_at_any_told_place_yields_the_rest(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b,c", "\"", "\r", "\n", "\r\n", ",", "xxxxxxxxxxxx", "\u{feff}"]),
                0..80,
            ),
            chunk in 1usize..16,
            max in proptest::prop_oneof![8u64..40, proptest::strategy::Just(1u64 << 20)],
        ) {
            let input = pieces.concat().into_bytes();
            let tell = Tell::default();
            let mut items = read_from(Trickle(std::io::Cursor::new(input.clone()), chunk), "t.csv".into(), vec![], max, None, tell.clone());
            let whole: Vec<(SourceItem, Option<At>)> =
                std::iter::from_fn(|| items.next().map(|i| (i, tell.at()))).collect();
            for k in 1..whole.len() {
                let Some(at) = whole[k - 1].1.clone() else { continue };
                let offset = at.offset;
                let rest = Trickle(std::io::Cursor::new(input[offset as usize..].to_vec()), chunk);
                let tail: Vec<SourceItem> = read_from(rest, "t.csv".into(), vec![], max, Some(at), Tell::default()).collect();
                let expected: Vec<SourceItem> = whole[k..].iter().map(|(i, ..)| i.clone()).collect();
                proptest::prop_assert_eq!(tail, expected, "started after item {}", k);
            }
        }
    }

    #[test]
    fn a_header_naming_a_column_twice_is_unreadable() {
        let got = items(b"id,v, id\n1,2,3\n");
        let reason = "header (line 1) names `id` twice (columns 1 and 3); the file cannot be read";
        assert!(matches!(&got[..], [SourceItem::Unreadable(u)] if u.id == "t.csv#1" && u.reason == reason), "{got:?}");
    }

    #[test]
    fn empty_file_and_header_only_yield_nothing() {
        assert!(items(b"").is_empty());
        assert!(items(b"a,b\r\n").is_empty());
    }
}
