//! `sse-bench`: see `sse_bench::cli`.

fn main() -> std::process::ExitCode {
    sse_bench::cli::main()
}
