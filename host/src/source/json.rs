//! JSON Lines and JSON arrays, streamed.

use std::io::{BufRead, Read};
use std::sync::mpsc;

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::resume::{At, Tell};
use super::{Items, SourceItem, Unreadable, cap_raw};
use crate::record::Record;

pub(crate) use crate::record::check_json;

/// One record per non-blank line; ids are `name#line`. A line over `max_line` bytes (or a file
/// without newlines) is one unreadable record, skipped to its end without being held in memory,
/// and the next line is read as usual.
pub fn read_lines<R: BufRead + Send + 'static>(reader: R, name: String, max_line: u64) -> Items {
    read_lines_from(reader, name, max_line, None, Tell::default())
}

/// [`read_lines`], of a `reader` that starts at `from` (its offset and the lines before it)
/// when given, else at the start of the file; `tell` hears the place after each item.
pub fn read_lines_from<R: BufRead + Send + 'static>(
    mut reader: R,
    name: String,
    max_line: u64,
    from: Option<At>,
    tell: Tell,
) -> Items {
    let max_line = usize::try_from(max_line).unwrap_or(usize::MAX);
    let (mut offset, mut line_no) = from.map_or((0, 0), |a| (a.offset, a.lines));
    let mut buf = Vec::new();
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        let item = loop {
            if done {
                break None;
            }
            buf.clear();
            line_no += 1;
            let id = format!("{name}#{line_no}");
            let read = (&mut reader).take((max_line as u64).saturating_add(1)).read_until(b'\n', &mut buf);
            let read = match read {
                Ok(n) if buf.len() > max_line && !buf.ends_with(b"\n") => {
                    skip_line(&mut reader).map(|skipped| n + skipped)
                }
                other => other,
            };
            match read {
                Ok(0) => break None,
                Err(e) => {
                    done = true;
                    // A transport error may pass on a retry (the rest of the input was not
                    // read); corrupt compressed data will not.
                    let unreadable =
                        Unreadable { id, raw: String::new(), reason: format!("cannot read line {line_no}: {e}") };
                    break Some(if super::is_retryable(&e) {
                        SourceItem::Failed(unreadable)
                    } else {
                        SourceItem::Unreadable(unreadable)
                    });
                }
                Ok(n) => offset += n as u64,
            }
            if buf.len() > max_line && !buf.ends_with(b"\n") {
                let reason = format!("line {line_no} is longer than {max_line} bytes; skipped to its end");
                break Some(SourceItem::Unreadable(Unreadable { id, raw: cap_raw(&buf), reason }));
            }
            let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            let bytes = if line_no == 1 { bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes) } else { bytes };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let unreadable =
                |reason: String| SourceItem::Unreadable(Unreadable { id: id.clone(), raw: cap_raw(bytes), reason });
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    break Some(unreadable(format!("line {line_no} is not UTF-8 (byte {})", e.valid_up_to() + 1)));
                }
            };
            if let Err(e) = check_json(text) {
                break Some(unreadable(format!("line {line_no} is not JSON: {e}")));
            }
            break Some(SourceItem::Record(Record::new(id, text)));
        };
        if done {
            tell.lose();
        } else {
            tell.set(offset, line_no);
        }
        item
    }))
}

/// Reads past the next newline (or to the end), holding nothing; returns the bytes passed.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<usize> {
    let mut skipped = 0;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(skipped);
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(skipped + at + 1);
            }
            None => {
                let n = available.len();
                reader.consume(n);
                skipped += n;
            }
        }
    }
}

/// The elements of a top-level JSON array, one record each (ids `name#N`, N from 1), parsed on
/// a helper thread with a bounded queue so memory stays flat on a large file.
pub fn read_array<R: Read + Send + 'static>(reader: R, name: String) -> Items {
    let (tx, rx) = mpsc::sync_channel::<SourceItem>(256);
    std::thread::Builder::new()
        .name("weir-json-array".into())
        .spawn(move || {
            let mut de = serde_json::Deserializer::from_reader(reader);
            let result = (&mut de).deserialize_seq(ArrayVisitor { tx: tx.clone(), name: name.clone(), count: 0 });
            let result = result.and_then(|_| de.end());
            if let Err(e) = result {
                let message = e.to_string();
                let retryable = e.is_io() && super::is_retryable(&std::io::Error::from(e));
                let item = if retryable {
                    SourceItem::Failed(Unreadable {
                        id: format!("{name}#?"),
                        raw: String::new(),
                        reason: format!(
                            "cannot read the JSON array ({message}); elements after that point were not read"
                        ),
                    })
                } else {
                    SourceItem::Unreadable(Unreadable {
                        id: format!("{name}#?"),
                        raw: String::new(),
                        reason: format!(
                            "JSON array is malformed ({message}); elements after that point cannot be read"
                        ),
                    })
                };
                let _ = tx.send(item);
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the JSON reader thread"));
    Box::new(rx.into_iter())
}

struct ArrayVisitor {
    tx: mpsc::SyncSender<SourceItem>,
    name: String,
    count: u64,
}

impl<'de> Visitor<'de> for ArrayVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<u64, A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.count += 1;
            let record = Record::new(format!("{}#{}", self.name, self.count), raw.get());
            if self.tx.send(SourceItem::Record(record)).is_err() {
                break; // the reader went away
            }
        }
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line longer than the bound is one unreadable record, read past in bounded memory (a
    /// reader that yields it in small pieces, as a network stream does), and the next line is read.
    #[test]
    fn an_overlong_line_is_unreadable_and_the_next_one_is_read() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(200));
        let input = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n{long}");
        let reader = std::io::BufReader::with_capacity(16, std::io::Cursor::new(input.into_bytes()));
        let items: Vec<SourceItem> = read_lines(reader, "f.jsonl".into(), 64).collect();
        assert_eq!(items.len(), 4, "{items:?}");
        assert!(matches!(&items[0], SourceItem::Record(r) if r.id == "f.jsonl#1"));
        for (i, line) in [(1, 2), (3, 4)] {
            assert!(
                matches!(&items[i], SourceItem::Unreadable(u) if u.id == format!("f.jsonl#{line}")
                    && u.reason == format!("line {line} is longer than 64 bytes; skipped to its end")
                    && u.raw.len() == 65),
                "{:?}",
                items[i]
            );
        }
        assert!(matches!(&items[2], SourceItem::Record(r) if r.id == "f.jsonl#3" && r.body == "{\"b\":2}"));
    }

    #[test]
    fn lines_skip_blanks_and_report_bad_ones() {
        let input = b"{\"a\":1}\r\n\n  \nnot json\n\xff\xfe\n[1,2]";
        let items: Vec<SourceItem> =
            read_lines(std::io::Cursor::new(input.to_vec()), "f.jsonl".into(), 1 << 20).collect();
        assert_eq!(items.len(), 4);
        assert!(matches!(&items[0], SourceItem::Record(r) if r.id == "f.jsonl#1" && r.body == "{\"a\":1}"));
        assert!(
            matches!(&items[1], SourceItem::Unreadable(u) if u.id == "f.jsonl#4" && u.reason.starts_with("line 4 is not JSON"))
        );
        assert!(matches!(&items[2], SourceItem::Unreadable(u) if u.reason.starts_with("line 5 is not UTF-8")));
        assert!(matches!(&items[3], SourceItem::Record(r) if r.body == "[1,2]"));
    }

    /// Started at a line's offset, a reader yields the same items with the same ids as one
    /// reading the whole file, and says where each next line starts.
    #[test]
    fn lines_started_mid_file_continue_the_ids() {
        let input = b"{\"a\":1}\r\n\n  \nnot json\n{\"b\":2}\n{\"c\":3}".to_vec();
        let tell = Tell::default();
        let whole: Vec<(SourceItem, (u64, u64))> = {
            let mut items =
                read_lines_from(std::io::Cursor::new(input.clone()), "f.jsonl".into(), 1 << 20, None, tell.clone());
            std::iter::from_fn(|| items.next().map(|i| (i, tell.place().unwrap()))).collect()
        };
        assert_eq!(whole.len(), 4);
        for k in 1..whole.len() {
            let (offset, lines) = whole[k - 1].1;
            let at = At { offset, lines, header: Vec::new(), after_cr: false };
            let rest = std::io::Cursor::new(input[offset as usize..].to_vec());
            let tail: Vec<SourceItem> =
                read_lines_from(rest, "f.jsonl".into(), 1 << 20, Some(at), Tell::default()).collect();
            let expected: Vec<SourceItem> = whole[k..].iter().map(|(i, _)| i.clone()).collect();
            assert_eq!(tail, expected, "started after item {k}");
        }
    }

    #[test]
    fn arrays_stream_elements_and_report_a_broken_tail() {
        let items: Vec<SourceItem> =
            read_array(std::io::Cursor::new(br#"[{"a":1}, {"b": [2]} ,3]"#.to_vec()), "f.json".into()).collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], SourceItem::Record(r) if r.id == "f.json#2" && r.body == r#"{"b": [2]}"#));
        let items: Vec<SourceItem> =
            read_array(std::io::Cursor::new(br#"[{"a":1}, {"b": "#.to_vec()), "f.json".into()).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], SourceItem::Unreadable(u) if u.reason.starts_with("JSON array is malformed")));
    }
}
