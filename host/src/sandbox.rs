//! What a plugin instance can reach, and the limits it runs under.
//!
//! Each instance gets its own [`Sandbox`] as store data: a WASI context with no preopened
//! directories, no environment variables, no arguments and no network, stdout and stderr
//! captured into a small ring buffer (so a panic message can be reported with the record that
//! caused it), a memory limiter, and a buffer for log lines the plugin sends through the
//! `log` import.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of guest stdout/stderr kept per call (the most recent ones).
pub const CAPTURE_BYTES: usize = 16 * 1024;
/// Log lines kept per call; more are counted and dropped.
pub const MAX_LOG_LINES: usize = 100;
/// Characters kept of one log line.
pub const MAX_LOG_LINE: usize = 2048;

/// Store data of one plugin instance.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) output: Capture,
    pub(crate) logs: LogBuffer,
}

impl Sandbox {
    /// A sandbox whose memory may grow to `memory_bytes`.
    pub fn new(memory_bytes: usize) -> Self {
        let output = Capture::default();
        let wasi = WasiCtx::builder().stdout(output.clone()).stderr(output.clone()).build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter { memory_bytes, table_elements: 1 << 20, hit: None },
            output,
            logs: LogBuffer::default(),
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Which limit a growth request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory { desired: usize, limit: usize },
    Table { desired: usize, limit: usize },
}

/// Caps linear memory and tables; a growth past the cap traps (rather than making
/// `memory.grow` return -1, which Rust's allocator turns into an abort with a less precise
/// message) and is remembered so the host can report `memory` rather than `trap`.
pub struct Limiter {
    pub(crate) memory_bytes: usize,
    table_elements: usize,
    pub(crate) hit: Option<LimitHit>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = Some(LimitHit::Memory { desired, limit: self.memory_bytes });
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: wanted {desired} bytes, limit {}",
                self.memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(LimitHit::Table { desired, limit: self.table_elements });
            return Err(wasmtime::Error::msg(format!("table limit exceeded: wanted {desired} elements")));
        }
        Ok(true)
    }
}

/// A log line a plugin sent during a call, reported by the host afterwards with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: tracing::Level,
    pub record: Option<u32>,
    pub message: String,
}

/// Log lines of the current call.
#[derive(Debug, Default)]
pub struct LogBuffer {
    pub lines: Vec<LogLine>,
    pub dropped: usize,
}

impl LogBuffer {
    pub(crate) fn push(&mut self, level: tracing::Level, record: Option<u32>, mut message: String) {
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE {
            message.truncate(message.floor_char_boundary(MAX_LOG_LINE));
            message.push('…');
        }
        self.lines.push(LogLine { level, record, message });
    }
}

/// Guest stdout/stderr: keeps the last [`CAPTURE_BYTES`] bytes, never blocks, never fails.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    buf: Arc<Mutex<VecDeque<u8>>>,
}

impl Capture {
    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = &bytes[bytes.len().saturating_sub(CAPTURE_BYTES)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(CAPTURE_BYTES);
        buf.drain(..overflow);
        buf.extend(bytes);
    }

    /// Takes what was captured (lossy UTF-8), leaving the buffer empty.
    pub fn take(&self) -> String {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_tail() {
        let c = Capture::default();
        c.append(&vec![b'a'; CAPTURE_BYTES]);
        c.append(b"panicked at 'boom'");
        let s = c.take();
        assert_eq!(s.len(), CAPTURE_BYTES);
        assert!(s.ends_with("panicked at 'boom'"));
        assert_eq!(c.take(), "");
    }

    #[test]
    fn log_buffer_caps_lines_and_length() {
        let mut b = LogBuffer::default();
        for _ in 0..MAX_LOG_LINES + 5 {
            b.push(tracing::Level::INFO, None, "é".repeat(MAX_LOG_LINE));
        }
        assert_eq!(b.lines.len(), MAX_LOG_LINES);
        assert_eq!(b.dropped, 5);
        assert!(b.lines[0].message.len() <= MAX_LOG_LINE + "…".len());
    }
}
