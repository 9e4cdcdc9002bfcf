//! Property tests of the wire (issue #15): the decoders (CSV, JSON Lines, JSON arrays), the
//! Lambda event envelopes, and `unpack` of plugin answers, on generated and arbitrary input.
//!
//! Two claims run through all of them. Nothing panics: a file, a message or a plugin's answer is
//! untrusted data. Every input is accounted for: one item per row, line, element or message, and
//! one outcome per record, none lost and none doubled.
//!
//! Inputs stay at a few KB and case counts modest, so the file runs in seconds in a debug build.
//! Streams are collected on a helper thread with a deadline, so a decoder that never ends fails
//! its test instead of hanging the run. The plain tests after each group pin the cases these
//! properties found (each failed before its fix): they name the input that triggered it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::sync::mpsc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use weir_host::contract::PluginOutcome;
use weir_host::contract::v0_1_0::unpack;
use weir_host::contract::v0_1_0::weir::transform::types::{Attribute, Outcome, OutputBatch, OutputRecord, Span};
use weir_host::source::lambda::{self, Envelope, Event, Message, ObjectRef, SqsMessage};
use weir_host::source::{self, Items, SourceItem};
use weir_host::{Limits, Record, RejectKind};

// ---------------------------------------------------------------------------------------------
// Readers and streams

/// How a reader hands its bytes to a decoder. A network stream may deliver any number of bytes
/// per read, so what a decoder yields must not depend on where reads split the input.
#[derive(Debug, Clone, Copy)]
enum Chunking {
    /// All at once (a `Cursor`).
    Whole,
    /// Through a `BufReader` of this capacity: `fill_buf` returns at most this much.
    Buffered(usize),
    /// At most this many bytes per `read`.
    Trickle(usize),
}

/// A reader that hands out at most `chunk` (>= 1) bytes per read.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn reader(bytes: Vec<u8>, how: Chunking) -> Box<dyn BufRead + Send> {
    match how {
        Chunking::Whole => Box::new(Cursor::new(bytes)),
        Chunking::Buffered(capacity) => Box::new(BufReader::with_capacity(capacity, Cursor::new(bytes))),
        Chunking::Trickle(chunk) => Box::new(BufReader::with_capacity(chunk, Trickle { bytes, at: 0, chunk })),
    }
}

/// Any way of chunking; trickles of at least `min_trickle` bytes.
fn chunking(min_trickle: usize) -> impl Strategy<Value = Chunking> {
    prop_oneof![
        Just(Chunking::Whole),
        (1usize..64).prop_map(Chunking::Buffered),
        (min_trickle..64).prop_map(Chunking::Trickle),
    ]
}

/// Collects a stream on another thread: a stream that never ends fails the test after a deadline
/// instead of hanging it, and a panic while reading fails it too.
fn collect_within(items: Items) -> Vec<SourceItem> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(items.collect::<Vec<_>>());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(items) => items,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end within 20 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the stream panicked (see its message above)"),
    }
}

/// Small strings of any characters (control characters, any plane).
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..8).prop_map(|chars| chars.into_iter().collect::<String>())
}

/// Object keys: often the ones the envelopes look for, so that arbitrary values reach them.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(vec![
            "Records", "eventSource", "EventSource", "Type", "Message", "Event", "s3", "bucket", "object", "key",
            "name", "versionId", "body", "messageId", "Sns",
        ])
        .prop_map(String::from),
        2 => text(),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("a finite number", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop_oneof![
            text(),
            prop::sample::select(vec!["aws:s3", "aws:sqs", "aws:sns", "Notification", "s3:TestEvent", "{}"])
                .prop_map(String::from),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
    .boxed()
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

// ---------------------------------------------------------------------------------------------
// CSV

/// What a CSV item says, with its body parsed (key order is not part of the contract).
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Record { id: String, body: Value, attributes: Vec<(String, String)> },
    Unreadable { id: String, reason: String },
    Failed { id: String, reason: String },
}

fn seen_csv(items: Vec<SourceItem>) -> Vec<Seen> {
    items
        .into_iter()
        .map(|item| match item {
            SourceItem::Record(r) => Seen::Record {
                body: serde_json::from_str(&r.body).expect("a record's body is JSON"),
                id: r.id,
                attributes: r.attributes,
            },
            SourceItem::Unreadable(u) => Seen::Unreadable { id: u.id, reason: u.reason },
            SourceItem::Failed(u) => Seen::Failed { id: u.id, reason: u.reason },
        })
        .collect()
}

fn read_csv(bytes: Vec<u8>, how: Chunking, attributes: Vec<(String, String)>, max_record: u64) -> Vec<SourceItem> {
    collect_within(source::csv::read(reader(bytes, how), "t.csv".into(), attributes, max_record))
}

/// The line an id of `t.csv` names.
fn line_of(id: &str) -> u64 {
    id.strip_prefix("t.csv#").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{id:?} names no line of t.csv"))
}

/// The line breaks in `bytes`: LF, CRLF, or a lone CR (the reader's ids count each).
fn breaks(bytes: &[u8]) -> u64 {
    bytes.iter().enumerate().filter(|(i, b)| **b == b'\n' || (**b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))).count()
        as u64
}

/// One row as the csv crate's writer writes it (quoting as needed), with its terminator.
fn csv_line<T: AsRef<[u8]>>(fields: &[T], crlf: bool) -> Vec<u8> {
    let terminator = if crlf { ::csv::Terminator::CRLF } else { ::csv::Terminator::Any(b'\n') };
    let mut w = ::csv::WriterBuilder::new().flexible(true).terminator(terminator).from_writer(Vec::new());
    w.write_record(fields).expect("write a row");
    w.into_inner().expect("flush a row")
}

/// A file's bytes and the line each row starts on; `blanks[i]` blank lines go before row `i`.
fn csv_bytes_of<T: AsRef<[u8]>>(
    names: &[String],
    rows: &[Vec<T>],
    crlf: bool,
    bom: bool,
    blanks: &[usize],
) -> (Vec<u8>, Vec<u64>) {
    let mut bytes = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
    bytes.extend(csv_line(names, crlf));
    let mut lines = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        for _ in 0..blanks.get(i).copied().unwrap_or(0) {
            bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        lines.push(1 + breaks(&bytes));
        bytes.extend(csv_line(row, crlf));
    }
    (bytes, lines)
}

/// Bytes that are mostly CSV's own: separators, quotes, line ends, a BOM, multi-byte UTF-8.
fn csv_noise(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![2 => any::<u8>(), 3 => prop::sample::select(b",\"\r\n a\xc3\xa9\xef\xbb\xbf".to_vec())];
    prop::collection::vec(byte, 0..max_len)
}

/// Header names: unique once trimmed (the reader trims them), with spaces, commas, quotes.
fn header() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[ ]?[a-z]{1,4}[,\"é ]?", 1..=6).prop_filter("names unique once trimmed", |names| {
        let mut trimmed: Vec<&str> = names.iter().map(|n| n.trim()).collect();
        trimmed.sort_unstable();
        trimmed.windows(2).all(|w| w[0] != w[1])
    })
}

/// A field: commas, quotes, LF, CRLF, lone CR, non-ASCII, a BOM character, or empty.
fn field() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![",", "\"", "\n", "\r\n", "\r", " ", "é", "日本", "🦀", "\u{feff}"])
            .prop_map(String::from),
        "[a-z0-9]{1,4}",
    ];
    prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat())
}

/// The values of one row of `n` fields (one empty value is written `""`, not a blank line).
fn values(n: usize) -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(field(), n).boxed()
}

#[derive(Debug, Clone)]
struct CsvFile {
    names: Vec<String>,
    rows: Vec<Vec<String>>,
    crlf: bool,
    bom: bool,
}

fn csv_file() -> impl Strategy<Value = CsvFile> {
    (header(), any::<bool>(), any::<bool>())
        .prop_flat_map(|(names, crlf, bom)| {
            let rows = prop::collection::vec(values(names.len()), 0..40);
            (Just(names), rows, Just(crlf), Just(bom))
        })
        .prop_map(|(names, rows, crlf, bom)| CsvFile { names, rows, crlf, bom })
}

/// A row of a file with a header of `n` names: well-formed, ragged, or with a non-UTF-8 field.
#[derive(Debug, Clone)]
enum Row {
    Good(Vec<String>),
    Ragged(Vec<String>),
    NotUtf8 { fields: Vec<Vec<u8>>, at: usize },
}

impl Row {
    fn fields(&self) -> Vec<Vec<u8>> {
        match self {
            Row::Good(values) | Row::Ragged(values) => values.iter().map(|v| v.clone().into_bytes()).collect(),
            Row::NotUtf8 { fields, .. } => fields.clone(),
        }
    }
}

fn row(n: usize) -> impl Strategy<Value = Row> {
    let ragged =
        (1..=n + 2).prop_filter("another field count", move |k| *k != n).prop_flat_map(values).prop_map(Row::Ragged);
    let not_utf8 = (prop::collection::vec(field(), n), 0..n).prop_map(|(fields, at)| {
        let mut fields: Vec<Vec<u8>> = fields.into_iter().map(String::into_bytes).collect();
        fields[at].push(0xFF);
        Row::NotUtf8 { fields, at }
    });
    prop_oneof![2 => values(n).prop_map(Row::Good), 1 => ragged, 1 => not_utf8]
}

fn attribute_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z_]{1,8}", ".{0,8}"), 0..3)
}

/// The record a well-formed row reads as.
fn row_record(names: &[String], values: &[String], line: u64, attributes: &[(String, String)]) -> Seen {
    let body = names.iter().map(|n| n.trim().to_string()).zip(values.iter().map(|v| Value::String(v.clone())));
    Seen::Record { id: format!("t.csv#{line}"), body: Value::Object(body.collect()), attributes: attributes.to_vec() }
}

fn record(id: &str, body: Value) -> Seen {
    Seen::Record { id: id.into(), body, attributes: Vec::new() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (a) Arbitrary bytes never panic and the stream ends; every id names a line of the file, in
    /// non-decreasing order; a record comes after the header (line 2 on); an error that ends the
    /// file (the bound, a header that is not UTF-8) is the last item; a `Cursor` never fails.
    #[test]
    fn csv_arbitrary_bytes_end_and_name_lines_in_order(
        bytes in csv_noise(2048),
        max in prop_oneof![8u64..128, Just(1u64 << 20)],
        how in chunking(1),
        attributes in attribute_pairs(),
    ) {
        let items = read_csv(bytes.clone(), how, attributes.clone(), max);
        let mut last = 0;
        for (i, item) in items.iter().enumerate() {
            let line = line_of(item.id());
            prop_assert!(line >= 1 && line >= last, "{item:?} after line {last}");
            last = line;
            match item {
                SourceItem::Record(r) => {
                    prop_assert!(line >= 2, "{r:?}");
                    let body: Value = serde_json::from_str(&r.body).expect("a record's body is JSON");
                    let object = body.as_object().expect("a record is an object");
                    prop_assert!(object.values().all(Value::is_string), "{body}");
                    prop_assert_eq!(&r.attributes, &attributes);
                }
                SourceItem::Unreadable(u) if u.reason.starts_with("cannot read past")
                    || u.reason.starts_with("header") => {
                    prop_assert_eq!(i, items.len() - 1, "{:?} ends the file", u);
                }
                SourceItem::Unreadable(_) => {}
                SourceItem::Failed(u) => prop_assert!(false, "a Cursor cannot fail: {u:?}"),
            }
        }
    }

    /// (b) A well-formed file (written by the csv crate: quotes, embedded commas and newlines,
    /// CRLF or LF, an optional BOM) reads back as exactly its rows, in order, each a JSON object
    /// header -> value, with the given attributes and the id of the line the row starts on.
    #[test]
    fn csv_well_formed_files_read_back_row_for_row(
        file in csv_file(),
        how in chunking(1),
        attributes in attribute_pairs(),
    ) {
        let (bytes, lines) = csv_bytes_of(&file.names, &file.rows, file.crlf, file.bom, &[]);
        let expected: Vec<Seen> = file
            .rows
            .iter()
            .zip(&lines)
            .map(|(values, line)| row_record(&file.names, values, *line, &attributes))
            .collect();
        prop_assert_eq!(seen_csv(read_csv(bytes, how, attributes.clone(), 1 << 20)), expected);
    }

    /// (c) Ragged rows and rows with a non-UTF-8 field are one `Unreadable` each, naming the line
    /// and the reason, among the records of the good rows: every row is exactly one item, in order.
    #[test]
    fn csv_every_row_is_one_item_ragged_or_not_utf8(
        (names, rows) in header().prop_flat_map(|names| {
            let n = names.len();
            (Just(names), prop::collection::vec(row(n), 0..30))
        }),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        how in chunking(1),
    ) {
        let fields: Vec<Vec<Vec<u8>>> = rows.iter().map(Row::fields).collect();
        let (bytes, lines) = csv_bytes_of(&names, &fields, crlf, bom, &[]);
        let expected: Vec<Seen> = rows
            .iter()
            .zip(&lines)
            .map(|(row, line)| {
                let id = format!("t.csv#{line}");
                match row {
                    Row::Good(values) => row_record(&names, values, *line, &[]),
                    Row::Ragged(values) => Seen::Unreadable {
                        id,
                        reason: format!(
                            "line {line}: expected {} fields (as in the header), found {}",
                            names.len(),
                            values.len()
                        ),
                    },
                    Row::NotUtf8 { at, .. } => Seen::Unreadable {
                        id,
                        reason: format!("line {line}: field {} (`{}`) is not UTF-8", at + 1, names[*at].trim()),
                    },
                }
            })
            .collect();
        prop_assert_eq!(seen_csv(read_csv(bytes, how, Vec::new(), 1 << 20)), expected);
    }

    /// (d) With a small `max_record_bytes`, no row is held past the bound: a record is at most the
    /// bound, a longer row is one unreadable item naming the bound, and reading goes on after it;
    /// nothing panics and the stream ends.
    #[test]
    fn csv_a_small_bound_holds(
        bytes in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![",", "\"", "\n", "\r\n", "é"]).prop_map(String::from),
                "[a-z]{0,300}",
            ],
            0..24,
        )
        .prop_map(|pieces| [b"a,b\n".as_slice(), pieces.concat().as_bytes()].concat()),
        max in 8u64..256,
        how in chunking(1),
    ) {
        let items = read_csv(bytes, how, Vec::new(), max);
        for (i, item) in items.iter().enumerate() {
            match item {
                SourceItem::Record(r) => {
                    let body: Map<String, Value> = serde_json::from_str(&r.body).expect("a record is an object");
                    let values: u64 = body.values().map(|v| v.as_str().map_or(0, str::len) as u64).sum();
                    let size = values + body.len().saturating_sub(1) as u64;
                    prop_assert!(size <= max, "{size} bytes held under a bound of {max}: {r:?}");
                }
                SourceItem::Unreadable(u) if u.reason.contains("a record longer than") => {
                    let bound = format!("a record longer than {max} bytes (an unterminated quote?); skipped, reading on at line ");
                    prop_assert!(u.reason.contains(&bound), "{}", u.reason);
                }
                SourceItem::Unreadable(u) if u.reason.starts_with("cannot read past") => {
                    prop_assert_eq!(i, items.len() - 1, "{:?} ends the file", u);
                }
                SourceItem::Unreadable(_) => {}
                SourceItem::Failed(u) => prop_assert!(false, "a Cursor cannot fail: {u:?}"),
            }
        }
    }

    /// Where reads split a file changes nothing the reader yields (the bound out of reach; see
    /// `csv_a_row_over_the_bound_is_unreadable_however_reads_split` for it in reach).
    #[test]
    fn csv_reads_the_same_however_reads_split(bytes in csv_noise(2048), chunk in 1usize..32) {
        let whole = seen_csv(read_csv(bytes.clone(), Chunking::Whole, Vec::new(), 1 << 20));
        prop_assert_eq!(seen_csv(read_csv(bytes, Chunking::Trickle(chunk), Vec::new(), 1 << 20)), whole);
    }

    /// Ids name the line a row starts on also after blank lines (the csv crate skips them as
    /// part of the next row; found with `a\r\n1\r\n\r\n2\r\n`, where `2` was `t.csv#3` for line 4).
    #[test]
    fn csv_ids_name_row_lines_after_blank_lines(
        file in csv_file(),
        blanks in prop::collection::vec(0usize..3, 40),
    ) {
        let (bytes, lines) = csv_bytes_of(&file.names, &file.rows, file.crlf, file.bom, &blanks);
        let ids: Vec<String> = read_csv(bytes, Chunking::Whole, Vec::new(), 1 << 20)
            .iter()
            .map(|item| item.id().to_string())
            .collect();
        let expected: Vec<String> = lines.iter().map(|line| format!("t.csv#{line}")).collect();
        prop_assert_eq!(ids, expected);
    }
}

/// A row that is one empty quoted field (`""`) is a row, not a blank line (it was dropped,
/// silently): the csv crate's writer writes exactly that for a one-column row with an empty
/// value, and with more columns it is a ragged row to report.
#[test]
fn csv_a_row_of_one_empty_quoted_field_is_not_dropped() {
    assert_eq!(csv_line(&[""], false), b"\"\"\n", "what the csv crate writes for one empty field");
    fn read(input: &[u8]) -> Vec<Seen> {
        seen_csv(read_csv(input.to_vec(), Chunking::Whole, Vec::new(), 1 << 20))
    }
    assert_eq!(read(b"a\n\"\"\nx\n"), [record("t.csv#2", json!({"a": ""})), record("t.csv#3", json!({"a": "x"}))]);
    assert_eq!(
        read(b"a,b\n\"\"\n1,2\n").first(),
        Some(&Seen::Unreadable {
            id: "t.csv#2".into(),
            reason: "line 2: expected 2 fields (as in the header), found 1".into()
        })
    );
}

/// With CR-only line ends (classic Mac, Excel's "CSV (Macintosh)") each row has its own id (the
/// parser ended a row at each CR but the ids counted only LFs: every row was `t.csv#1`, and ids
/// are the sinks' idempotency keys, so all rows but one were lost as duplicates).
#[test]
fn csv_cr_only_line_endings_give_each_row_its_own_id() {
    let items = read_csv(b"a\r1\r2\r".to_vec(), Chunking::Whole, Vec::new(), 1 << 20);
    let ids: Vec<&str> = items.iter().map(SourceItem::id).collect();
    // A lone CR ends a row for the parser, so it ends a line for the ids.
    assert_eq!(ids, ["t.csv#2", "t.csv#3"]);
}

/// A BOM split across the first reads is still a BOM (the csv crate strips one only when its
/// first read holds all three bytes: read one or two bytes at a time, `\xEF\xBB\xBF"a"\n1\n` had
/// the header `"a"`, quotes included).
#[test]
fn csv_a_bom_split_across_reads_is_still_a_bom() {
    let input = b"\xEF\xBB\xBF\"a\"\n1\n".to_vec();
    let whole = seen_csv(read_csv(input.clone(), Chunking::Whole, Vec::new(), 1 << 20));
    assert_eq!(whole, [record("t.csv#2", json!({"a": "1"}))]);
    for chunk in [1, 2] {
        let split = seen_csv(read_csv(input.clone(), Chunking::Trickle(chunk), Vec::new(), 1 << 20));
        assert_eq!(split, whole, "{chunk} byte(s) per read");
    }
}

/// A row over `max_record_bytes` is unreadable however reads split the file (the bound was
/// checked only when a read was made, and the csv crate reads 8 KiB at a time: a long row that
/// arrived in one read was a record, so an object read differently on a retry).
#[test]
fn csv_a_row_over_the_bound_is_unreadable_however_reads_split() {
    let mut input = b"a\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend(b"\ny\n");
    let read = |how| seen_csv(read_csv(input.clone(), how, Vec::new(), 1024));
    let split = read(Chunking::Trickle(100));
    let reason = "line 2: a record longer than 1024 bytes (an unterminated quote?); skipped, reading on at line 3";
    assert_eq!(
        split,
        [Seen::Unreadable { id: "t.csv#2".into(), reason: reason.into() }, record("t.csv#3", json!({"a": "y"}))]
    );
    assert_eq!(read(Chunking::Whole), split, "a 2000-byte row read whole passed a 1024-byte bound");
}

// ---------------------------------------------------------------------------------------------
// JSON Lines and JSON arrays

/// What a JSON Lines item says, raw text included.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    Record { id: String, body: String },
    Unreadable { id: String, raw: String, reason: String },
    Failed { id: String, reason: String },
}

fn seen_lines(items: Vec<SourceItem>) -> Vec<Line> {
    items
        .into_iter()
        .map(|item| match item {
            SourceItem::Record(r) => Line::Record { id: r.id, body: r.body },
            SourceItem::Unreadable(u) => Line::Unreadable { id: u.id, raw: u.raw, reason: u.reason },
            SourceItem::Failed(u) => Line::Failed { id: u.id, reason: u.reason },
        })
        .collect()
}

/// Lossy UTF-8 of at most 64 KiB, as the dead-letter record keeps it.
fn capped(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned()
}

/// What `read_lines` must yield for `bytes`, line by line: a line (without its `\n`) longer
/// than `max` is unreadable; else without one trailing `\r` (and a BOM on line 1) a blank line
/// is nothing, and any other is a record iff it is UTF-8 and JSON.
fn expected_lines(name: &str, bytes: &[u8], max: u64) -> Vec<Line> {
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        pieces.pop();
    }
    let mut out = Vec::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        let line = i + 1;
        let id = format!("{name}#{line}");
        if piece.len() as u64 > max {
            out.push(Line::Unreadable {
                id,
                raw: capped(&piece[..max as usize + 1]),
                reason: format!("line {line} is longer than {max} bytes; skipped to its end"),
            });
            continue;
        }
        let text = piece.strip_suffix(b"\r").unwrap_or(piece);
        let text = if line == 1 { text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text) } else { text };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw = capped(text);
        out.push(match std::str::from_utf8(text) {
            Err(e) => {
                let reason = format!("line {line} is not UTF-8 (byte {})", e.valid_up_to() + 1);
                Line::Unreadable { id, raw, reason }
            }
            Ok(t) => match serde_json::from_str::<serde::de::IgnoredAny>(t) {
                Ok(_) => Line::Record { id, body: t.to_string() },
                Err(e) => Line::Unreadable { id, raw, reason: format!("line {line} is not JSON: {e}") },
            },
        });
    }
    out
}

/// One line's content for a bound of `max` (>= 16): JSON, garbage, blank, right at the bound,
/// over it, not UTF-8, or JSON behind a BOM.
fn jsonl_line(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => "[a-z{}\\[\\]\":, 0-9]{1,20}".prop_map(String::into_bytes),
        1 => prop::sample::select(vec!["", " ", "\t", " \t ", "\r"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => (max - 2..=max + 2).prop_map(|n| format!("\"{}\"", "y".repeat(n - 2)).into_bytes()),
        1 => (max + 1..max + 40).prop_map(|n| format!("\"{}\"", "x".repeat(n)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|mut b| {
            b.push(0xFF);
            b
        }),
        1 => json_value().prop_map(|v| [b"\xEF\xBB\xBF".as_slice(), v.to_string().as_bytes()].concat()),
    ]
}

/// A JSON Lines file and its bound: lines ending in LF or CRLF, the last one maybe open.
fn jsonl_file() -> impl Strategy<Value = (Vec<u8>, u64)> {
    prop_oneof![3 => 16usize..128, 1 => Just(1usize << 20)].prop_flat_map(|max| {
        // Lines near a 1 MiB bound would be 1 MiB: keep them near 200 bytes, well under it.
        let lines = prop::collection::vec((jsonl_line(max.min(200)), any::<bool>()), 0..30);
        (lines, any::<bool>()).prop_map(move |(lines, last_open)| {
            let mut bytes = Vec::new();
            let count = lines.len();
            for (i, (line, crlf)) in lines.into_iter().enumerate() {
                bytes.extend(line);
                if !(last_open && i + 1 == count) {
                    bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
            }
            (bytes, max as u64)
        })
    })
}

/// A JSON array of values with whitespace around its elements, and the elements' text.
fn json_array() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    let ws = || prop::sample::select(vec!["", " ", "\n", "\r\n\t"]);
    (prop::collection::vec((json_value(), ws(), ws()), 0..20), ws(), ws()).prop_map(|(elements, open, close)| {
        let bodies: Vec<String> = elements.iter().map(|(v, _, _)| v.to_string()).collect();
        let mut text = format!("{open}[");
        for (i, ((_, before, after), body)) in elements.iter().zip(&bodies).enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(before);
            text.push_str(body);
            text.push_str(after);
        }
        text.push(']');
        text.push_str(close);
        (text.into_bytes(), bodies)
    })
}

/// Records as `(id, body)`; anything else shows up as a mismatch.
fn ids_and_bodies(items: &[SourceItem]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|item| match item {
            SourceItem::Record(r) => (r.id.clone(), r.body.clone()),
            other => ("not a record".into(), format!("{other:?}")),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A generated file (JSON, garbage, blank, at-the-bound and over-long lines, non-UTF-8, a
    /// BOM, CRLF, an open last line) yields one item per non-blank line, naming its 1-based line,
    /// a record iff the line is JSON within the bound; however reads split it.
    #[test]
    fn json_lines_one_item_per_line((bytes, max) in jsonl_file(), how in chunking(1)) {
        let items = collect_within(source::json::read_lines(reader(bytes.clone(), how), "f.jsonl".into(), max));
        prop_assert_eq!(seen_lines(items), expected_lines("f.jsonl", &bytes, max));
    }

    /// Arbitrary bytes never panic, the stream ends, and the same accounting holds.
    #[test]
    fn json_lines_arbitrary_bytes(
        bytes in prop::collection::vec(
            prop_oneof![any::<u8>(), prop::sample::select(b"\n\r {}[]\"1,\xef\xbb\xbf".to_vec())],
            0..2048,
        ),
        max in prop_oneof![0u64..64, Just(1u64 << 20)],
        how in chunking(1),
    ) {
        let items = collect_within(source::json::read_lines(reader(bytes.clone(), how), "f.jsonl".into(), max));
        prop_assert_eq!(seen_lines(items), expected_lines("f.jsonl", &bytes, max));
    }

    /// A generated array yields one record per element, in order, ids `name#1..`, each body the
    /// element's text, and nothing else; however reads split it.
    #[test]
    fn json_arrays_one_record_per_element((bytes, bodies) in json_array(), how in chunking(1)) {
        let items = collect_within(source::json::read_array(reader(bytes, how), "f.json".into()));
        let expected: Vec<(String, String)> =
            bodies.into_iter().enumerate().map(|(i, body)| (format!("f.json#{}", i + 1), body)).collect();
        prop_assert_eq!(ids_and_bodies(&items), expected);
    }

    /// Arbitrary bytes and damaged arrays never panic and the stream ends (the helper thread
    /// finishes): an array that parses is exactly its elements; anything else is the elements
    /// read before the damage, then one `Unreadable` saying so. A panic on the helper thread
    /// would end the stream without that item, and fail here.
    #[test]
    fn json_arrays_arbitrary_bytes(
        bytes in prop_oneof![
            csv_noise(1024),
            (json_array(), any::<Index>(), any::<u8>(), any::<bool>()).prop_map(|((mut bytes, _), at, byte, cut)| {
                let at = at.index(bytes.len() + 1);
                if cut {
                    bytes.truncate(at);
                } else {
                    bytes.insert(at, byte);
                }
                bytes
            }),
        ],
        how in chunking(1),
    ) {
        let items = collect_within(source::json::read_array(reader(bytes.clone(), how), "f.json".into()));
        match serde_json::from_slice::<Vec<Box<RawValue>>>(&bytes) {
            Ok(elements) => {
                let expected: Vec<(String, String)> = elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("f.json#{}", i + 1), e.get().to_string()))
                    .collect();
                prop_assert_eq!(ids_and_bodies(&items), expected);
            }
            Err(_) => {
                let (last, records) = items.split_last().expect("a malformed array is reported");
                prop_assert!(
                    matches!(last, SourceItem::Unreadable(u) if u.id == "f.json#?"
                        && u.reason.starts_with("JSON array is malformed")),
                    "{last:?}"
                );
                for (i, item) in records.iter().enumerate() {
                    prop_assert!(
                        matches!(item, SourceItem::Record(r)
                            if r.id == format!("f.json#{}", i + 1) && is_json(&r.body)),
                        "{item:?}"
                    );
                }
            }
        }
    }
}

/// `read_lines` takes any bound (it read `max_line + 1` bytes at most, which overflowed at
/// `u64::MAX`; through `weir.toml` the bound is at most 256 MiB, so only library callers met it).
#[test]
fn json_lines_take_any_bound() {
    let items = collect_within(source::json::read_lines(Cursor::new(b"{}\n".to_vec()), "f.jsonl".into(), u64::MAX));
    assert_eq!(seen_lines(items), [Line::Record { id: "f.jsonl#1".into(), body: "{}".into() }]);
}

// ---------------------------------------------------------------------------------------------
// Lambda event envelopes

/// What S3 leaves unencoded in event keys besides letters and digits.
const S3_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// An object an S3 event names, with its key as S3 sends it (URL-encoded, spaces as `+`).
#[derive(Debug, Clone)]
struct S3Object {
    bucket: String,
    key: String,
    encoded: String,
    version: Option<String>,
}

impl S3Object {
    /// What the event must read as: `versionId` empty or `null` is an unversioned bucket.
    fn object_ref(&self) -> ObjectRef {
        let version = self.version.clone().filter(|v| !v.is_empty() && v != "null");
        ObjectRef { bucket: self.bucket.clone(), key: self.key.clone(), version }
    }
}

fn s3_object() -> impl Strategy<Value = S3Object> {
    let piece = prop_oneof![
        prop::sample::select(vec!["/", " ", "+", "%", "%20", "é", "日本", "🦀", "~", "-", ".", "&", "="])
            .prop_map(String::from),
        "[A-Za-z0-9]{1,4}",
    ];
    let version = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("null".to_string())),
        "[A-Za-z0-9._]{1,32}".prop_map(Some),
    ];
    ("[a-z0-9][a-z0-9.-]{2,20}", prop::collection::vec(piece, 1..8), any::<bool>(), version).prop_map(
        |(bucket, pieces, keep_slashes, version)| {
            let key = pieces.concat();
            let set = if keep_slashes { S3_SAFE } else { NON_ALPHANUMERIC };
            // `%` is encoded too, so `%20` in the encoding can only be a space.
            let encoded = utf8_percent_encode(&key, set).to_string().replace("%20", "+");
            S3Object { bucket, key, encoded, version }
        },
    )
}

/// One record of an S3 event notification, as S3 sends it.
fn s3_record(o: &S3Object, i: usize) -> Value {
    let mut object =
        json!({"key": o.encoded, "size": 1024, "eTag": "0123456789abcdef", "sequencer": format!("{i:016X}")});
    if let Some(v) = &o.version {
        object["versionId"] = json!(v);
    }
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "weir",
            "bucket": {"name": o.bucket, "arn": format!("arn:aws:s3:::{}", o.bucket)},
            "object": object
        }
    })
}

fn s3_event(objects: &[S3Object]) -> Value {
    let records: Vec<Value> = objects.iter().enumerate().map(|(i, o)| s3_record(o, i)).collect();
    json!({ "Records": records })
}

/// An SNS notification of `message`, as SNS delivers it to SQS without raw delivery (and as the
/// `Sns` of an SNS Lambda event).
fn sns_notification(message: &str) -> Value {
    json!({
        "Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:weir", "Subject": "Amazon S3 Notification",
        "Message": message, "Timestamp": "2024-05-01T00:00:02.000Z", "SignatureVersion": "1",
        "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
}

/// One message of an SQS event as the SQS Lambda event carries it.
fn sqs_message_json(id: Option<&str>, body: Option<&str>, receives: Option<&str>, attributes: Value) -> Value {
    let receives = match receives {
        Some(n) => json!({ "ApproximateReceiveCount": n }),
        None => json!({}),
    };
    let mut m = json!({
        "receiptHandle": "AQEB", "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:weir", "messageAttributes": attributes,
        "attributes": receives
    });
    if let Some(id) = id {
        m["messageId"] = json!(id);
    }
    if let Some(body) = body {
        m["body"] = json!(body);
    }
    m
}

/// Values shaped like Lambda events: `Records` of any source, with arbitrary fields and bodies.
fn event_like() -> impl Strategy<Value = Value> {
    let record = (
        prop::sample::select(vec!["aws:sqs", "aws:s3", "aws:sns", "aws:kinesis"]),
        any::<bool>(),
        json_value(),
        prop::option::of(json_value().prop_map(|v| v.to_string())),
    )
        .prop_map(|(source, pascal, extra, body)| {
            let mut record = match extra {
                Value::Object(fields) => fields,
                other => Map::from_iter([("extra".to_string(), other)]),
            };
            let key = if pascal { "EventSource" } else { "eventSource" };
            record.insert(key.to_string(), json!(source));
            if let Some(body) = body {
                record.insert("body".into(), json!(body));
            }
            Value::Object(record)
        });
    prop::collection::vec(record, 0..4).prop_map(|records| json!({ "Records": records }))
}

/// What one generated SQS message is, and so what it must read as.
#[derive(Debug, Clone)]
enum Kind {
    /// A JSON record, with string message attributes (and a binary one, which is not kept).
    Record {
        body: String,
        attributes: BTreeMap<String, String>,
    },
    NotJson(String),
    NoBody,
    S3(Vec<S3Object>),
    TestEvent,
    /// An SNS notification of a JSON record.
    SnsRecord(String),
    /// An SNS notification of something that is not JSON.
    SnsNotJson(String),
    /// `aws:s3` records without what AWS always sends.
    MalformedS3,
}

fn kind() -> impl Strategy<Value = Kind> {
    let record = json_value().prop_map(|v| json!({"order": v}).to_string());
    prop_oneof![
        3 => (record.clone(), prop::collection::btree_map("[a-z]{1,6}", text(), 0..3))
            .prop_map(|(body, attributes)| Kind::Record { body, attributes }),
        1 => "x[a-z ]{0,10}".prop_map(Kind::NotJson),
        1 => Just(Kind::NoBody),
        1 => prop::collection::vec(s3_object(), 1..3).prop_map(Kind::S3),
        1 => Just(Kind::TestEvent),
        1 => record.prop_map(Kind::SnsRecord),
        1 => "x[a-z ]{0,10}".prop_map(Kind::SnsNotJson),
        1 => Just(Kind::MalformedS3),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary strings, JSON values, deep nesting and SNS-wrapped values as message bodies
    /// never panic; each message is one `Message` and one item of `sqs_records`.
    #[test]
    fn envelopes_of_arbitrary_bodies_never_panic(
        body in prop_oneof![
            ".{0,64}",
            json_value().prop_map(|v| v.to_string()),
            json_value().prop_map(|v| sns_notification(&v.to_string()).to_string()),
            (1usize..2000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
            (1usize..2000).prop_map(|n| sns_notification(&"{\"a\":".repeat(n)).to_string()),
        ],
    ) {
        let _ = lambda::envelope(&body);
        let _ = lambda::decode_key(&body);
        let m = SqsMessage { message_id: Some("m-1".into()), body: Some(body), ..Default::default() };
        let id = match lambda::message(0, &m) {
            Message::Item(item) => item.id().to_string(),
            Message::Objects { id, .. } | Message::Skip { id } => id,
        };
        prop_assert_eq!(id, "m-1");
        prop_assert_eq!(lambda::sqs_records(std::slice::from_ref(&m)).len(), 1);
    }

    /// Arbitrary JSON values and event-shaped ones never panic in `Event::from_value` nor in
    /// reading the event it returns; every SQS message is one item.
    #[test]
    fn events_of_arbitrary_values_never_panic(value in prop_oneof![json_value(), event_like()]) {
        match Event::from_value(value) {
            Ok(Event::Sqs(event)) => {
                for (i, m) in event.records.iter().enumerate() {
                    let _ = lambda::message(i, m);
                }
                prop_assert_eq!(lambda::sqs_records(&event.records).len(), event.records.len());
            }
            Ok(Event::S3(notification)) => {
                if let Ok(refs) = lambda::s3_objects(&notification.records) {
                    prop_assert_eq!(refs.len(), notification.records.len());
                }
            }
            Ok(Event::Sns(event)) => {
                for r in &event.records {
                    let _ = lambda::envelope(&r.sns.message);
                }
            }
            Ok(Event::Empty) | Err(_) => {}
        }
    }

    /// A generated S3 notification (random buckets, keys URL-encoded with spaces, unicode, `+`
    /// and `%`, `versionId` present, empty, `null` or absent) reads as its objects, in order, and
    /// so does every way it arrives: as an S3 event, as an SQS message body, inside an SNS
    /// notification in an SQS message, and in an SNS event.
    #[test]
    fn s3_notifications_round_trip_however_wrapped(
        objects in prop::collection::vec(s3_object(), 1..4),
        receives in prop::option::of(1u32..4),
    ) {
        let expected: Vec<ObjectRef> = objects.iter().map(S3Object::object_ref).collect();
        let event = s3_event(&objects);
        let body = event.to_string();
        let wrapped = sns_notification(&body).to_string();
        prop_assert_eq!(lambda::envelope(&body), Envelope::S3(expected.clone()));
        prop_assert_eq!(lambda::envelope(&wrapped), Envelope::S3(expected.clone()));
        for o in &objects {
            prop_assert_eq!(lambda::decode_key(&o.encoded), o.key.clone());
        }

        let Ok(Event::S3(notification)) = Event::from_value(event) else { panic!("an S3 event") };
        prop_assert_eq!(lambda::s3_objects(&notification.records), Ok(expected.clone()));

        // No receive count, or more than one: a checkpoint may exist.
        let redelivered = receives.is_none_or(|n| n > 1);
        let receives = receives.map(|n| n.to_string());
        let messages = vec![
            sqs_message_json(Some("m-0"), Some(body.as_str()), receives.as_deref(), json!({})),
            sqs_message_json(Some("m-1"), Some(wrapped.as_str()), receives.as_deref(), json!({})),
        ];
        let sqs = json!({ "Records": messages });
        let Ok(Event::Sqs(sqs)) = Event::from_value(sqs) else { panic!("an SQS event") };
        for (i, m) in sqs.records.iter().enumerate() {
            let objects = Message::Objects { id: format!("m-{i}"), refs: expected.clone(), redelivered, resume: None };
            prop_assert_eq!(lambda::message(i, m), objects);
        }

        let notification = sns_notification(&body);
        let sns = json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:weir:0", "Sns": notification
        }]});
        let Ok(Event::Sns(sns)) = Event::from_value(sns) else { panic!("an SNS event") };
        prop_assert_eq!(lambda::envelope(&sns.records[0].sns.message), Envelope::S3(expected));
    }

    /// Each message of a generated SQS event becomes exactly one `Message` of the right kind, with
    /// its id (messageId, else its place in the batch): a record with its string attributes,
    /// sorted; an unreadable message with the reason; the objects of an S3 event; a skipped test
    /// event; and `sqs_records` has one item per message, in order.
    #[test]
    fn sqs_messages_each_become_one_message(
        messages in prop::collection::vec(
            (kind(), any::<bool>(), prop::option::of(prop::sample::select(vec!["1", "2", "7", "x"]))),
            1..10,
        ),
    ) {
        let mut records = Vec::new();
        for (i, (kind, has_id, receives)) in messages.iter().enumerate() {
            let id = has_id.then(|| format!("m-{i}"));
            let (body, attributes) = match kind {
                Kind::Record { body, attributes } => {
                    let mut attrs: Map<String, Value> = attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), json!({"stringValue": v, "dataType": "String"})))
                        .collect();
                    attrs.insert("zz-binary".into(), json!({"binaryValue": "AA==", "dataType": "Binary"}));
                    (Some(body.clone()), Value::Object(attrs))
                }
                Kind::NotJson(body) => (Some(body.clone()), json!({})),
                Kind::NoBody => (None, json!({})),
                Kind::S3(objects) => (Some(s3_event(objects).to_string()), json!({})),
                Kind::TestEvent => {
                    let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"});
                    (Some(test.to_string()), json!({}))
                }
                Kind::SnsRecord(inner) | Kind::SnsNotJson(inner) => {
                    (Some(sns_notification(inner).to_string()), json!({}))
                }
                Kind::MalformedS3 => (Some(json!({"Records": [{"eventSource": "aws:s3"}]}).to_string()), json!({})),
            };
            records.push(sqs_message_json(id.as_deref(), body.as_deref(), *receives, attributes));
        }
        let Ok(Event::Sqs(event)) = Event::from_value(json!({ "Records": records })) else { panic!("an SQS event") };
        prop_assert_eq!(event.records.len(), messages.len());
        let items = lambda::sqs_records(&event.records);
        prop_assert_eq!(items.len(), messages.len());

        for (i, ((kind, has_id, receives), m)) in messages.iter().zip(&event.records).enumerate() {
            let id = if *has_id { format!("m-{i}") } else { format!("sqs#{}", i + 1) };
            prop_assert_eq!(items[i].id(), id.as_str());
            let got = lambda::message(i, m);
            let unreadable = |prefix: &str| {
                matches!(&got, Message::Item(SourceItem::Unreadable(u)) if u.id == id && u.reason.starts_with(prefix))
            };
            match kind {
                Kind::Record { body, attributes } => {
                    let attributes: Vec<(String, String)> =
                        attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    let record = Record { id: id.clone(), body: body.clone(), attributes };
                    prop_assert_eq!(got, Message::Item(SourceItem::Record(record)));
                }
                Kind::NotJson(_) | Kind::SnsNotJson(_) => {
                    prop_assert!(unreadable("message body is not JSON"), "{got:?}");
                }
                Kind::NoBody => prop_assert!(unreadable("SQS message has no string `body`"), "{got:?}"),
                Kind::S3(objects) => {
                    let refs = objects.iter().map(S3Object::object_ref).collect();
                    let redelivered = *receives != Some("1");
                    prop_assert_eq!(got, Message::Objects { id, refs, redelivered, resume: None });
                }
                Kind::TestEvent => prop_assert_eq!(got, Message::Skip { id }),
                Kind::SnsRecord(inner) => {
                    prop_assert_eq!(got, Message::Item(SourceItem::Record(Record::new(id, inner.clone()))));
                }
                Kind::MalformedS3 => {
                    prop_assert!(unreadable("an S3 event notification that cannot be read"), "{got:?}");
                }
            }
        }
    }
}

/// An S3 record without a bucket name or an object key (fields AWS always sends) makes the
/// message unreadable, with the reason (it was left out, so a message of only such records
/// stood for nothing and was acknowledged, unread).
#[test]
fn s3_records_without_a_bucket_or_key_are_not_dropped() {
    for s3 in [
        json!({"bucket": {}, "object": {"key": "k.csv"}}),
        json!({"bucket": {"name": null}, "object": {"key": "k.csv"}}),
        json!({"bucket": {"name": "b"}, "object": {}}),
    ] {
        let body = json!({"Records": [{"eventSource": "aws:s3", "s3": s3}]}).to_string();
        let envelope = lambda::envelope(&body);
        assert!(matches!(envelope, Envelope::Malformed(_)), "{body}: {envelope:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// `unpack` of plugin answers

fn input_records() -> impl Strategy<Value = Vec<Record>> {
    let record = ("[a-z0-9#/:.]{1,12}", prop::collection::vec(("[a-z]{1,3}", text()), 0..3));
    prop::collection::vec(record, 0..8).prop_map(|records| {
        records.into_iter().map(|(id, attributes)| Record { id, body: "{}".into(), attributes }).collect::<Vec<_>>()
    })
}

/// A span: usually near the text (in range, past its end, splitting a character), sometimes
/// anywhere, up to overflowing `start + len`.
fn span(text_len: usize) -> impl Strategy<Value = Span> {
    let edge = text_len as u32 + 2;
    prop_oneof![
        6 => (0..=edge, 0..=edge).prop_map(|(start, len)| Span { start, len }),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(start, len)| Span { start, len }),
        1 => Just(Span { start: u32::MAX, len: u32::MAX }),
    ]
}

/// Mostly small, sometimes huge.
fn count(small: u32) -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..small, 1 => any::<u32>(), 1 => Just(u32::MAX)]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![3 => count(4).prop_map(Outcome::Emit), 1 => text().prop_map(Outcome::Reject)]
}

/// Any answer to a batch of `inputs` records: one outcome per record or not, as many records as
/// the outcomes emit or not, spans and attribute ranges in or out of range.
fn arbitrary_answer(inputs: usize) -> impl Strategy<Value = OutputBatch> {
    let text = prop::collection::vec(
        prop::sample::select(vec!["{}", "[1]", "\"é\"", "日", "🦀", "null", "{", ",", " "]),
        0..8,
    )
    .prop_map(|pieces| pieces.concat());
    let outcomes =
        prop_oneof![3 => Just(inputs), 1 => 0usize..9].prop_flat_map(|n| prop::collection::vec(outcome(), n));
    (text, outcomes, any::<bool>())
        .prop_flat_map(|(text, outcomes, consistent)| {
            let emitted: u64 = outcomes.iter().map(|o| if let Outcome::Emit(n) = o { u64::from(*n) } else { 0 }).sum();
            // Usually as many records as the outcomes emit, so that the spans are read at all.
            let records = if consistent && emitted <= 16 { emitted as usize } else { (emitted % 5) as usize };
            let len = text.len();
            let record = (span(len), count(6), count(4)).prop_map(|(body, first_attribute, attribute_count)| {
                OutputRecord { body, first_attribute, attribute_count }
            });
            let attribute = (span(len), span(len)).prop_map(|(key, value)| Attribute { key, value });
            (Just(text), Just(outcomes), prop::collection::vec(record, records), prop::collection::vec(attribute, 0..6))
        })
        .prop_map(|(text, outcomes, records, attributes)| OutputBatch { text, records, attributes, outcomes })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1u64..64, 1u32..4).prop_map(|(max_output_bytes, max_outputs_per_record)| Limits {
            max_output_bytes,
            max_outputs_per_record,
            ..Limits::default()
        }),
    ]
}

/// What a plugin means to answer for one record.
#[derive(Debug, Clone)]
enum Known {
    Reject(String),
    /// Outputs: a JSON body and the attributes set on it.
    Emit(Vec<(String, Vec<(String, String)>)>),
}

fn known() -> impl Strategy<Value = Known> {
    let output = (json_value().prop_map(|v| v.to_string()), prop::collection::vec(("[a-z]{1,3}", text()), 0..3));
    prop_oneof![1 => text().prop_map(Known::Reject), 3 => prop::collection::vec(output, 0..4).prop_map(Known::Emit)]
}

/// Appends `s` to the text after a two-byte character (so that spans must be honoured, not
/// guessed) and returns its span.
fn push(text: &mut String, s: &str) -> Span {
    text.push('·');
    let start = text.len() as u32;
    text.push_str(s);
    Span { start, len: s.len() as u32 }
}

/// Packs known outputs as the SDK does: one text buffer, records and attributes as spans into it.
fn answer_of(known: &[Known]) -> OutputBatch {
    let (mut text, mut records, mut attributes, mut outcomes) = (String::new(), Vec::new(), Vec::new(), Vec::new());
    for answer in known {
        match answer {
            Known::Reject(reason) => outcomes.push(Outcome::Reject(reason.clone())),
            Known::Emit(outputs) => {
                outcomes.push(Outcome::Emit(outputs.len() as u32));
                for (body, set) in outputs {
                    let body = push(&mut text, body);
                    let first_attribute = attributes.len() as u32;
                    for (k, v) in set {
                        let key = push(&mut text, k);
                        let value = push(&mut text, v);
                        attributes.push(Attribute { key, value });
                    }
                    records.push(OutputRecord { body, first_attribute, attribute_count: set.len() as u32 });
                }
            }
        }
    }
    OutputBatch { text, records, attributes, outcomes }
}

/// What the host must make of known outputs: ids `id` or `id/k`, attributes the input's
/// overridden by those set.
fn expected_of(inputs: &[Record], known: &[Known]) -> Vec<PluginOutcome> {
    let merged = |input: &[(String, String)], set: &[(String, String)]| -> Vec<(String, String)> {
        if set.is_empty() {
            return input.to_vec();
        }
        let mut merged: Vec<(String, String)> =
            input.iter().filter(|(k, _)| !set.iter().any(|(s, _)| s == k)).cloned().collect();
        merged.extend(set.iter().cloned());
        merged
    };
    inputs
        .iter()
        .zip(known)
        .map(|(input, k)| match k {
            Known::Reject(reason) => PluginOutcome::Reject { kind: RejectKind::PluginReject, reason: reason.clone() },
            Known::Emit(outputs) => PluginOutcome::Emit(
                outputs
                    .iter()
                    .enumerate()
                    .map(|(i, (body, set))| Record {
                        id: if outputs.len() == 1 { input.id.clone() } else { format!("{}/{i}", input.id) },
                        body: body.clone(),
                        attributes: merged(&input.attributes, set),
                    })
                    .collect(),
            ),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary answers (random outcomes, huge counts, spans out of range, overflowing or
    /// splitting a character, attribute ranges out of bounds) to 0..8 records never panic. An
    /// `Err` is the batch's invalid output or output limit; an `Ok` has one outcome per input:
    /// the plugin's own rejection passed on, or exactly the records it emitted (JSON, with the
    /// input's id, `id/k` for a fan-out), or that record's rejection by a limit or the contract.
    #[test]
    fn unpack_never_panics_and_answers_every_input(
        (inputs, answer) in input_records().prop_flat_map(|inputs| {
            let n = inputs.len();
            (Just(inputs), arbitrary_answer(n))
        }),
        limits in limits(),
    ) {
        let outcomes = answer.outcomes.clone();
        match unpack(&inputs, answer, &limits) {
            Ok(results) => {
                prop_assert_eq!(results.len(), inputs.len());
                for ((input, outcome), result) in inputs.iter().zip(&outcomes).zip(&results) {
                    match (outcome, result) {
                        (Outcome::Reject(said), PluginOutcome::Reject { kind: RejectKind::PluginReject, reason }) => {
                            prop_assert_eq!(said, reason);
                        }
                        (Outcome::Emit(n), PluginOutcome::Emit(records)) => {
                            prop_assert_eq!(records.len(), *n as usize);
                            for (k, r) in records.iter().enumerate() {
                                let id =
                                    if records.len() == 1 { input.id.clone() } else { format!("{}/{k}", input.id) };
                                prop_assert_eq!(&r.id, &id);
                                prop_assert!(is_json(&r.body), "{:?}", r.body);
                            }
                        }
                        (
                            Outcome::Emit(_),
                            PluginOutcome::Reject { kind: RejectKind::OutputLimit | RejectKind::InvalidOutput, .. },
                        ) => {}
                        (outcome, result) => prop_assert!(false, "{outcome:?} became {result:?}"),
                    }
                }
            }
            Err((kind, reason)) => {
                prop_assert!(matches!(kind, RejectKind::InvalidOutput | RejectKind::OutputLimit), "{kind:?}");
                prop_assert!(!reason.is_empty());
            }
        }
    }

    /// A well-formed answer packed from known outputs (rejections, filters, fan-outs, attributes
    /// overriding the input's) reads back as exactly those outputs.
    #[test]
    fn unpack_reads_back_a_well_formed_answer(
        (inputs, known) in input_records().prop_flat_map(|inputs| {
            let n = inputs.len();
            (Just(inputs), prop::collection::vec(known(), n))
        }),
    ) {
        let answer = answer_of(&known);
        prop_assert_eq!(unpack(&inputs, answer, &Limits::default()), Ok(expected_of(&inputs, &known)));
    }
}
