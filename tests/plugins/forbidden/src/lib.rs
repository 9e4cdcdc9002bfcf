//! A plugin that tries to reach the network: it imports `wasi:sockets`, which the host refuses
//! at load, naming the import.
wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "weir:transform/plugin@0.1.0" });

use exports::weir::transform::transformer::Guest;
use weir::transform::types::{Batch, OutputBatch};

struct Exfiltrate;

impl Guest for Exfiltrate {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        // Pulls in wasi:sockets/tcp and friends.
        let _ = std::net::TcpStream::connect("127.0.0.1:9");
        Ok(())
    }
    fn transform(_batch: Batch) -> OutputBatch {
        OutputBatch { text: String::new(), records: vec![], attributes: vec![], outcomes: vec![] }
    }
}

export!(Exfiltrate);
