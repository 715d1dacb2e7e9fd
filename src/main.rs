//! The `clarify` command-line program. Parsing, logging setup and command code live in
//! `cli`; this file maps the outcome to an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

/// mimalloc replaces the glibc allocator. Under glibc, a burn 0.22 CPU training run spent 37 %
/// of its time in page faults and zeroing of large temporaries, and mimalloc doubled its speed
/// (measured on a 2-core machine).
#[global_allocator]
static GLOBAL_ALLOCATOR: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args);

    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            cli::print_error(&error);
            ExitCode::from(cli::exit_code(&error))
        }
    }
}
