//! The `rova` command line.

fn main() -> std::process::ExitCode {
    rova::cli::main()
}
