//! Structured logging through the host. On wasm each call goes to the host's `log` import,
//! which tags the line with the stage, plugin and batch; natively (unit tests) it goes to stderr.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one log line through the host.
pub fn log(level: Level, message: &str) {
    crate::__private::host_log(level, message);
}

/// Logs at `trace`.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}
/// Logs at `debug`.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Logs at `info`.
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Logs at `warn`.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Logs at `error`.
pub fn error(message: &str) {
    log(Level::Error, message)
}
