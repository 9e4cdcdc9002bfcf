//! Local AWS emulators for the integration tests: installed when missing, started on free
//! loopback ports, stopped on drop.
//!
//! - dynalite 4.0.0 (npm, into `target/emulators`): DynamoDB that behaves like DynamoDB for
//!   concurrency, limits and conditional writes, but without transactions.
//! - moto server 5.2.5 (PyPI, into `.venv-moto`, the venv terraform/tests/run.sh shares): S3,
//!   SQS, SNS and DynamoDB with transactions. Started through `tests/emulators/moto_serial.py`,
//!   which applies one request at a time, because moto's DynamoDB races on concurrent requests
//!   (DynamoDB applies each atomically; see that file).
//! - `tests/emulators/fault_proxy.py`: throttling, 500s and dropped connections in front of one.
//!
//! Where an emulator cannot be installed the test is [`skipped`]: it says SKIPPED (counted by
//! `tests/run.sh`), and under `CI=true` a skip is a failure, so CI never passes a test that did
//! not run. [`sdk_config`] and [`create_table`] are the one way tests reach an emulator.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running emulator process; killed on drop.
pub struct Process {
    child: Child,
    pub port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Says that a test did not run and why: on stderr, and as a line in `$WEIR_SKIPS_FILE` when
/// set (libtest hides a passing test's output, so `tests/run.sh` counts skips from that file).
/// Under `CI=true` a skip is a failure: this panics, naming it.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("SKIPPED under CI=true, which counts as a failure: {test}: {why}");
    }
    eprintln!("SKIPPED: {test}: {why}");
    if let Some(file) = std::env::var_os("WEIR_SKIPS_FILE") {
        use std::io::Write;
        let line = format!("SKIPPED: {test}: {}\n", why.replace('\n', " "));
        let appended = std::fs::OpenOptions::new().create(true).append(true).open(&file);
        if let Err(e) = appended.and_then(|mut f| f.write_all(line.as_bytes())) {
            eprintln!("could not record the skip in {}: {e}", file.to_string_lossy());
        }
    }
}

/// The region every test's clients use.
pub const REGION: &str = "us-east-1";

/// The SDK configuration of a test against an emulator at `endpoint`: a fixed region, fake
/// credentials, standard retries with `max_attempts` attempts per request, and the HTTP client
/// weir's own (`weir_host::aws::https_client`: rustls on ring; emulators speak plain HTTP).
pub async fn sdk_config(endpoint: &str, max_attempts: u32) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("fake", "fake", None, None, "weir-tests"))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// Creates an on-demand table whose key is one string attribute, as weir's tables are.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let definition = AttributeDefinition::builder()
        .attribute_name(key)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition");
    let schema = KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build().expect("key schema");
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition)
        .key_schema(schema)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {name}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> Option<u16> {
    Some(TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port())
}

/// Starts an emulator and waits until it listens. Its output (a line per request, tracebacks of
/// the connections the fault proxy drops) goes to `target/emulators/logs/<what>-<port>.log`,
/// not into the test output.
fn started(mut command: Command, port: u16, what: &str) -> Option<Process> {
    let logs = root().join("target/emulators/logs");
    let log = std::fs::create_dir_all(&logs)
        .and_then(|()| std::fs::File::create(logs.join(format!("{}-{port}.log", what.replace(' ', "-")))));
    let stderr = log.map(Stdio::from).unwrap_or_else(|_| Stdio::inherit());
    let child = match command.stdout(Stdio::null()).stderr(stderr).spawn() {
        Ok(c) => c,
        Err(e) => {
            skipped(&format!("cannot start {what}: {e}; this test did not run"));
            return None;
        }
    };
    let process = Process { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port} (its output: target/emulators/logs/)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(process)
}

/// dynalite on a free port; `None` (after saying SKIPPED) without npm/node.
pub fn dynalite() -> Option<Process> {
    let prefix = root().join("target/emulators");
    let cli = prefix.join("node_modules/dynalite/cli.js");
    {
        let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !cli.exists() {
            std::fs::create_dir_all(&prefix).ok()?;
            let installed = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                .arg(&prefix)
                .arg("dynalite@4.0.0")
                .status();
            if !matches!(installed, Ok(s) if s.success()) || !cli.exists() {
                skipped(&format!("dynalite could not be installed with npm ({installed:?}); this test did not run"));
                return None;
            }
        }
    }
    let port = free_port().expect("a free loopback port");
    let mut command = Command::new("node");
    command.arg(&cli).args([
        "--port",
        &port.to_string(),
        "--host",
        "127.0.0.1",
        "--createTableMs",
        "0",
        "--deleteTableMs",
        "0",
    ]);
    started(command, port, "dynalite")
}

/// The project's Python venv with moto server; `None` (after saying SKIPPED) if it cannot be made.
pub fn moto_python() -> Option<PathBuf> {
    let venv = root().join(".venv-moto");
    let python = venv.join("bin/python");
    let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // tests/emulators/venv.sh keeps the venv to the pinned requirements (and is quick when it is).
    let ok = Command::new("bash").arg(root().join("tests/emulators/venv.sh")).status().is_ok_and(|s| s.success());
    if !ok || !venv.join("bin/moto_server").exists() {
        skipped(&format!("moto server could not be installed into {}; this test did not run", venv.display()));
        return None;
    }
    Some(python)
}

/// moto server (one request at a time, see the module docs) on a free port.
pub fn moto() -> Option<Process> {
    let python = moto_python()?;
    let port = free_port().expect("a free loopback port");
    let mut command = Command::new(python);
    command.arg(root().join("tests/emulators/moto_serial.py")).args(["127.0.0.1", &port.to_string()]);
    started(command, port, "moto server")
}

/// The fault-injection proxy in front of `upstream`: `share` of requests get a fault.
pub fn fault_proxy(upstream: u16, share: f64, seed: u64) -> Option<Process> {
    fault_proxy_holding(upstream, share, seed, 1.5)
}

/// [`fault_proxy`], holding its `slow` answers `slow` seconds.
pub fn fault_proxy_holding(upstream: u16, share: f64, seed: u64, slow: f64) -> Option<Process> {
    let python = moto_python()?;
    let port = free_port().expect("a free loopback port");
    let mut command = Command::new(python);
    command.arg(root().join("tests/emulators/fault_proxy.py")).args([
        port.to_string(),
        upstream.to_string(),
        share.to_string(),
        seed.to_string(),
        slow.to_string(),
    ]);
    started(command, port, "fault proxy")
}
