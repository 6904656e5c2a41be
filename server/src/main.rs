//! The `mcpgateway` binary: parse, then dispatch. Everything else is in the library
//! (its allocator too: `alloc.rs`).

fn main() -> std::process::ExitCode {
    server::cli::main()
}
