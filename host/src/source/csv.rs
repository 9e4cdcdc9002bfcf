//! CSV: a header row, then one record per row as a JSON object of strings (header -> value).
//!
//! Streams with the `csv` crate: CRLF or LF, quoted fields with embedded commas, quotes and
//! newlines, a UTF-8 byte-order mark before the header. A row with a different number of fields
//! than the header, or bytes that are not UTF-8, becomes an [`Unreadable`] naming the line; the
//! rest of the file goes on. Record ids are `name#line` (the row's first line, 1-based, header
//! is line 1). A record longer than the limit (`max_record_bytes`; an unterminated quote
//! swallows the rest of the file into one field) is never held: it is one unreadable item naming
//! the line where it starts, and reading resynchronises at the first line break past the limit.
//!
//! [`read_from`] starts mid-file (a resume, see [`super::resume`]): at a byte offset, after a
//! number of lines, with the header read before; it reports its place after every item.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use super::resume::{At, Tell};
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
    let lines =
        Arc::new(Mutex::new(LineIndex { passed: from.as_ref().map_or(0, |a| a.lines), ..LineIndex::default() }));
    let record_start = Arc::new(AtomicU64::new(base));
    let newlines = Newlines {
        inner: reader,
        offset: base,
        index: lines.clone(),
        record_start: record_start.clone(),
        max_record,
        pushback: Vec::new(),
    };
    let mut header: Option<Vec<String>> = from.map(|a| a.header);
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
            let line = lines.lock().unwrap_or_else(PoisonError::into_inner).line_at(parser.position());
            record_start.store(parser.position(), Ordering::Relaxed);
            match parser.read(&mut row) {
                Ok(false) => break 'read None,
                Err(e) if matches!(e.kind(), ::csv::ErrorKind::Io(io) if is_too_long(io)) => {
                    // Over the bound: skip to the next line break and read on from there.
                    let reason =
                        format!("line {line}: a record longer than {max_record} bytes (an unterminated quote?)");
                    let id = format!("{name}#{line}");
                    match parser.resync() {
                        Ok(next) => {
                            let next_line = lines.lock().unwrap_or_else(PoisonError::into_inner).line_at(next);
                            let reason = format!("{reason}; skipped, reading on at line {next_line}");
                            break 'read Some(SourceItem::Unreadable(Unreadable { id, raw: String::new(), reason }));
                        }
                        Err(e) => {
                            failed = true;
                            let reason = format!("{reason}; cannot read past it: {e}");
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
                    let unreadable = Unreadable {
                        id: format!("{name}#{line}"),
                        raw: String::new(),
                        reason: format!("cannot read past line {line}: {e}"),
                    };
                    break 'read Some(if matches!(e.kind(), ::csv::ErrorKind::Io(io) if super::is_retryable(io)) {
                        SourceItem::Failed(unreadable)
                    } else {
                        SourceItem::Unreadable(unreadable)
                    });
                }
                Ok(true) => {}
            }
            // The csv crate's own line counter lags on CRLF files; count from byte offsets.
            let start = parser.base + row.position().map(|p| p.byte()).unwrap_or(0);
            let line = lines.lock().unwrap_or_else(PoisonError::into_inner).line_at(start);
            let id = format!("{name}#{line}");
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
                    tell.set_header(&names);
                    header = Some(names);
                    continue;
                }
                Some(names) => {
                    if row.len() == 1 && row.get(0) == Some(b"") {
                        continue; // blank line
                    }
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
            let at = parser.position();
            tell.set(at, lines.lock().unwrap_or_else(PoisonError::into_inner).lines_before(at));
        }
        item
    }))
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
        self.csv = Some(Self::csv(newlines));
        Ok(self.base)
    }
}

/// Offsets of the newlines read but not yet passed by the parser, and how many were passed:
/// enough to turn a record's byte offset into its line number in bounded memory.
#[derive(Debug, Default)]
struct LineIndex {
    pending: VecDeque<u64>,
    passed: u64,
}

impl LineIndex {
    /// The 1-based line of a record starting at byte `offset` (offsets must not go backwards).
    /// A newline at `offset` itself counts: after a CRLF the csv parser starts the next record
    /// at the `\n`.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&nl| nl <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }

    /// How many newlines come before byte `offset` (a reader started there counts on from it).
    fn lines_before(&self, offset: u64) -> u64 {
        self.passed + self.pending.partition_point(|&nl| nl < offset) as u64
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
}

impl<R: Read> Newlines<R> {
    fn index(&self, bytes: &[u8]) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                index.pending.push_back(self.offset + i as u64);
            }
        }
    }

    /// Reads past the next newline (or to the end), holding nothing.
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
            match chunk.iter().position(|b| *b == b'\n') {
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
        if self.offset.saturating_sub(start) > self.max_record {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, TooLong(self.max_record)));
        }
        let n = if self.pushback.is_empty() {
            self.inner.read(buf)?
        } else {
            let n = buf.len().min(self.pushback.len());
            buf[..n].copy_from_slice(&self.pushback[..n]);
            self.pushback.drain(..n);
            n
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
            let at = At { offset, lines, header: vec!["id".into(), "v".into()] };
            let rest = input[offset as usize..].to_vec();
            let tail: Vec<SourceItem> =
                read_from(std::io::Cursor::new(rest), "t.csv".into(), vec![], 1024, Some(at), Tell::default())
                    .collect();
            let expected: Vec<SourceItem> = whole[k..].iter().map(|(i, _)| i.clone()).collect();
            assert_eq!(tail, expected, "started after item {k}");
        }
    }

    #[test]
    fn empty_file_and_header_only_yield_nothing() {
        assert!(items(b"").is_empty());
        assert!(items(b"a,b\r\n").is_empty());
    }
}
