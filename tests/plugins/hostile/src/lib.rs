//! A deliberately hostile plugin for the host's containment tests.
//!
//! It speaks the raw `weir:transform@0.1.0` ABI (no SDK), so it can also break the contract.
//! Each record's body selects a behaviour with a marker `"hostile":"<mode>"`; records without a
//! marker are echoed unchanged, so a test can mix innocents and a culprit in one batch:
//!
//! | mode      | behaviour                                              | expected kind    |
//! |-----------|--------------------------------------------------------|------------------|
//! | `loop`    | spins forever                                          | `timeout`        |
//! | `alloc`   | allocates 1 MiB blocks until something gives           | `memory`         |
//! | `panic`   | panics with a message naming the record                | `trap`           |
//! | `huge`    | emits one 100 MB JSON string                           | `output-limit`   |
//! | `recurse` | recurses without end                                   | `trap` (stack)   |
//! | `count`   | returns one outcome too many for the whole batch       | `invalid-output` |
//! | `nonjson` | emits a body that is not JSON                          | `invalid-output` |
//! | `slow`    | busy-waits `"ms"` milliseconds (default 30), then echoes | emitted        |
//! | `fanout`  | emits three copies                                     | emitted ×3       |
//! | `filter`  | emits nothing                                          | filtered         |
//! | `reject`  | rejects with a reason                                  | `plugin-reject`  |
//! | `log`     | logs a line naming the record, then echoes             | emitted          |
//!
//! Config: `fail_init = <message>` refuses init with that message.

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "weir:transform/plugin@0.1.0" });

use exports::weir::transform::transformer::Guest;
use weir::transform::types::{Attribute, Batch, Level, Outcome, OutputBatch, OutputRecord, Span};

struct Hostile;

fn mode(body: &str) -> Option<&str> {
    let at = body.find("\"hostile\":\"")? + "\"hostile\":\"".len();
    let rest = &body[at..];
    Some(&rest[..rest.find('"')?])
}

fn slice(text: &str, s: Span) -> &str {
    &text[s.start as usize..(s.start + s.len) as usize]
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX { 0 } else { recurse(n + 1).wrapping_add(std::hint::black_box(n)) }
}

struct Out {
    text: String,
    records: Vec<OutputRecord>,
}

impl Out {
    fn emit(&mut self, body: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(body);
        self.records.push(OutputRecord {
            body: Span { start, len: body.len() as u32 },
            first_attribute: 0,
            attribute_count: 0,
        });
    }
}

impl Guest for Hostile {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        match config.iter().find(|(k, _)| k == "fail_init") {
            Some((_, message)) => Err(message.clone()),
            None => Ok(()),
        }
    }

    fn transform(batch: Batch) -> OutputBatch {
        let text = batch.text.as_str();
        let mut out = Out { text: String::new(), records: Vec::new() };
        let mut outcomes = Vec::new();
        let mut extra_outcome = false;
        for (index, r) in batch.records.iter().enumerate() {
            let id = slice(text, r.id);
            let body = slice(text, r.body);
            let outcome = match mode(body) {
                Some("loop") => loop {
                    std::hint::black_box(index);
                },
                Some("alloc") => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![std::hint::black_box(1u8); 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                Some("panic") => panic!("boom on marker record {id}"),
                Some("recurse") => Outcome::Emit(std::hint::black_box(recurse(0)) as u32),
                Some("huge") => {
                    let mut big = String::with_capacity(100 * 1024 * 1024 + 2);
                    big.push('"');
                    big.extend(std::iter::repeat_n('x', 100 * 1024 * 1024));
                    big.push('"');
                    out.emit(&big);
                    Outcome::Emit(1)
                }
                Some("count") => {
                    extra_outcome = true;
                    out.emit(body);
                    Outcome::Emit(1)
                }
                Some("nonjson") => {
                    out.emit("this is {not json");
                    Outcome::Emit(1)
                }
                Some("slow") => {
                    let ms = body
                        .find("\"ms\":")
                        .and_then(|i| body[i + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                        .unwrap_or(30);
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                    while std::time::Instant::now() < until {
                        std::hint::black_box(index);
                    }
                    out.emit(body);
                    Outcome::Emit(1)
                }
                Some("fanout") => {
                    for _ in 0..3 {
                        out.emit(body);
                    }
                    Outcome::Emit(3)
                }
                Some("filter") => Outcome::Emit(0),
                Some("reject") => Outcome::Reject(format!("record {id} asked to be rejected")),
                Some("log") => {
                    weir::transform::log::log(Level::Info, Some(index as u32), &format!("hello from {id}"));
                    out.emit(body);
                    Outcome::Emit(1)
                }
                _ => {
                    out.emit(body);
                    Outcome::Emit(1)
                }
            };
            outcomes.push(outcome);
        }
        if extra_outcome {
            outcomes.push(Outcome::Emit(0));
        }
        let attributes: Vec<Attribute> = Vec::new();
        OutputBatch { text: out.text, records: out.records, attributes, outcomes }
    }
}

export!(Hostile);
