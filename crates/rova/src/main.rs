//! The `rova` command line.

/// mimalloc instead of glibc's malloc: a list of 1,000 servers builds and
/// frees tens of thousands of small JSON values and a 2 MB body, and
/// glibc's free of those (`malloc_consolidate`) was a third of the
/// request's CPU (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rova::cli::main()
}
