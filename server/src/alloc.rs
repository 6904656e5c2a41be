//! The allocator of the gateway, its CLI and its tests: mimalloc, faster than glibc's
//! for the import's many small records, allocated on the parsing thread and freed on
//! the writing one (a 100,000-entity import takes about a quarter less time; README,
//! Performance).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
