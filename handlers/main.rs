//! The `qotd` binary: see `qotd --help` and `qotd::cli`.

fn main() -> std::process::ExitCode {
    qotd::cli::main()
}
