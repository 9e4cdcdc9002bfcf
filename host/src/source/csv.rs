//! CSV: a header row, then one record per row as a JSON object of strings (header -> value).
//!
//! Streams with the `csv` crate: CRLF or LF, quoted fields with embedded commas, quotes and
//! newlines, a UTF-8 byte-order mark before the header. A row with a different number of fields
//! than the header, or bytes that are not UTF-8, becomes an [`Unreadable`] naming the line; the
//! rest of the file goes on. Record ids are `name#line` (the row's first line, 1-based, header
//! is line 1). A record longer than the limit (`max_record_bytes`; an unterminated quote
//! swallows the rest of the file into one field) is never held: reading stops there, and the rest of the file
//! is one unreadable item naming the line where that record starts.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

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
    let lines = Arc::new(Mutex::new(LineIndex::default()));
    let record_start = Arc::new(AtomicU64::new(0));
    let reader =
        Newlines { inner: reader, offset: 0, index: lines.clone(), record_start: record_start.clone(), max_record };
    let mut csv = ::csv::ReaderBuilder::new().flexible(true).has_headers(false).from_reader(reader);
    let mut header: Option<Vec<String>> = None;
    let mut row = ::csv::ByteRecord::new();
    let mut failed = false;
    Box::new(std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            let line = lines.lock().unwrap_or_else(PoisonError::into_inner).line_at(csv.position().byte());
            record_start.store(csv.position().byte(), Ordering::Relaxed);
            match csv.read_byte_record(&mut row) {
                Ok(false) => return None,
                Err(e) => {
                    // Errors end the file; report where. An I/O error (a dropped connection
                    // mid-object) may pass on a retry; anything else is the data's.
                    failed = true;
                    let unreadable = Unreadable {
                        id: format!("{name}#{line}"),
                        raw: String::new(),
                        reason: format!("cannot read past line {line}: {e}"),
                    };
                    return Some(if matches!(e.kind(), ::csv::ErrorKind::Io(io) if super::is_retryable(io)) {
                        SourceItem::Failed(unreadable)
                    } else {
                        SourceItem::Unreadable(unreadable)
                    });
                }
                Ok(true) => {}
            }
            // The csv crate's own line counter lags on CRLF files; count from byte offsets.
            let start = row.position().map(|p| p.byte()).unwrap_or(0);
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
                                return Some(SourceItem::Unreadable(Unreadable {
                                    id,
                                    raw: raw(),
                                    reason: format!("header (line {line}) is not UTF-8; the file cannot be read"),
                                }));
                            }
                        }
                    }
                    header = Some(names);
                    continue;
                }
                Some(names) => {
                    if row.len() == 1 && row.get(0) == Some(b"") {
                        continue; // blank line
                    }
                    if row.len() != names.len() {
                        return Some(SourceItem::Unreadable(Unreadable {
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
                                return Some(SourceItem::Unreadable(Unreadable {
                                    id,
                                    raw: raw(),
                                    reason: format!("line {line}: field {} (`{key}`) is not UTF-8", i + 1),
                                }));
                            }
                        }
                    }
                    let body = Value::Object(object).to_string();
                    let record = Record { id, body, attributes: attributes.clone() };
                    return Some(SourceItem::Record(record));
                }
            }
        }
    }))
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
}

/// Records where each newline is as bytes go by, and refuses to read more than `max_record`
/// bytes past the start of the record being parsed (the parser would hold them all).
struct Newlines<R> {
    inner: R,
    offset: u64,
    index: Arc<Mutex<LineIndex>>,
    record_start: Arc<AtomicU64>,
    max_record: u64,
}

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.record_start.load(Ordering::Relaxed);
        if self.offset.saturating_sub(start) > self.max_record {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a record longer than {} bytes (an unterminated quote?)", self.max_record),
            ));
        }
        let n = self.inner.read(buf)?;
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                index.pending.push_back(self.offset + i as u64);
            }
        }
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

    /// An unterminated quote would make the rest of the file one field: reading stops at the
    /// bound, in bounded memory, and what is left is one unreadable item naming where.
    #[test]
    fn a_record_over_the_bound_ends_the_file_as_unreadable() {
        let mut input = b"a,b\n1,2\n3,\"never closed\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        let reader = std::io::BufReader::with_capacity(64, std::io::Cursor::new(input));
        let got: Vec<SourceItem> = read(reader, "t.csv".into(), vec![], 1024).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(body(&got[0]), serde_json::json!({"a":"1","b":"2"}));
        assert!(
            matches!(&got[1], SourceItem::Unreadable(u) if u.id == "t.csv#3"
                && u.reason == "cannot read past line 3: a record longer than 1024 bytes (an unterminated quote?)"),
            "{:?}",
            got[1]
        );
    }

    #[test]
    fn empty_file_and_header_only_yield_nothing() {
        assert!(items(b"").is_empty());
        assert!(items(b"a,b\r\n").is_empty());
    }
}
