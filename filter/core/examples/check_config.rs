//! Prints what the filter would say about a pluginConfig: `cargo run -p canary-core --example check_config -- '<json>'`.
fn main() {
    for arg in std::env::args().skip(1) {
        match canary_core::Config::from_json(arg.as_bytes()) {
            Ok(_) => println!("ok"),
            Err(e) => println!("{e}"),
        }
    }
}
