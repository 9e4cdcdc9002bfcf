//! A valid wasm32-wasip2 component that is not a weir plugin (a command: exports wasi:cli/run).
fn main() {
    println!("hello");
}
