//! The `mcpgateway` binary: parse, then dispatch. Everything else is in the library.

/// mimalloc: faster than glibc's allocator for the import's many small records (a
/// 100,000-entity import takes about a quarter less time; README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    server::cli::main()
}
