//! The ingest benchmark (`benches/ingest.rs`, where its stages are described) as an example, so
//! that it runs with options: `cargo run --release --example ingest_bench -- --files 50`.

#[path = "../benches/ingest.rs"]
mod ingest;

fn main() {
    ingest::main();
}
