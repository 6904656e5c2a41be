//! The `mcpgateway` binary: parse, then dispatch. Everything else is in the library.

fn main() -> std::process::ExitCode {
    server::cli::main()
}
