//! The `clarify` command-line program. Parsing, logging setup and command code live in
//! `cli`; this file maps the outcome to an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

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
