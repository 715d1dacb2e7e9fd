//! Command-line interface: argument parsing, logging setup, dispatch and error reporting.
//!
//! Commands write results to stdout and logs to stderr. Exit status 2 means bad input or
//! usage (clap's own usage errors also exit with 2), 1 any other failure.

mod bench;
mod bench_policy;
mod dataset;
mod encoder_args;
mod import;
mod node;
mod policy;
mod stop;
mod train;

use std::io::{self, IsTerminal};

use clap::{ArgAction, Parser, Subcommand};
use clarify::bench::BenchError;
use clarify::store::{ImportError, StoreError};
use clarify::{DatasetError, FingerprintError};
use tracing_subscriber::EnvFilter;

/// Learn a robot policy from an operator's preference answers.
///
/// clarify is a ROS 2 node and tool set for preference-based robot learning with the
/// CLARIFY method. An operator compares pairs of trajectory segments and answers left,
/// right, can't tell or skip, and clarify turns the answers into a reward model and a
/// policy. "Can't tell" answers are used for learning, not discarded.
#[derive(Debug, Parser)]
#[command(name = "clarify", version, about, long_about)]
pub struct Cli {
    /// Log more: -v for debug, -vv for trace. RUST_LOG, when set, takes precedence.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    /// Log only warnings and errors. RUST_LOG, when set, takes precedence.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate and summarize offline datasets (NPZ files in the D4RL field layout).
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),

    /// Import a dataset NPZ file into a segment store (SQLite), skipping files already
    /// imported.
    ///
    /// Validates the file like `dataset inspect`, then stores its episodes and step arrays
    /// in one transaction: an invalid file leaves the store unchanged. A file whose bytes
    /// match an imported one (same SHA-256) is reported and not stored again.
    Import(import::ImportArgs),

    /// Run the live query node on DDS until interrupted: record the robot, select and
    /// publish preference queries, and store the operator's answers.
    ///
    /// Reads the node's `ros__parameters` from the parameter file (ROS 2 layout). Answers
    /// arrive on the answer topic, through the SubmitAnswer service and from gamepad
    /// buttons; each is committed to the segment store before it is acknowledged. The DDS
    /// domain is ROS_DOMAIN_ID (default 0).
    Node(Box<node::NodeArgs>),

    /// Run the policy on the robot and manage the model registry (install, activate,
    /// roll back).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Benchmark query selection with a simulated teacher on an offline dataset.
    #[command(subcommand)]
    Bench(bench::BenchCommand),

    /// Train the encoder, reward model and policy on a store's answers and install them as
    /// a new model set.
    ///
    /// Replays the answered queries in rounds, trains the CLARIFY encoder and the reward
    /// ensemble, relabels the dataset with the ensemble's mean reward, trains an IQL policy,
    /// exports the three networks to ONNX and installs them with a manifest into the model
    /// registry. Prints one JSON progress object per line on stdout; the last one has the
    /// installed version and its folder. A failed or interrupted run leaves the registry as
    /// it was.
    Train(Box<train::TrainArgs>),
}

/// Installs the stderr log subscriber. `RUST_LOG` selects the levels when set; otherwise
/// the level is info, changed by `-v` and `-q`.
pub fn init_logging(args: &Cli) {
    let default_level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));

    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Runs the command that `args` selects.
pub fn run(args: Cli) -> anyhow::Result<()> {
    match args.command {
        Command::Dataset(command) => dataset::run(command),
        Command::Import(args) => import::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Policy(command) => policy::run(command),
        Command::Bench(command) => bench::run(command),
        Command::Train(args) => train::run(&args),
    }
}

/// Prints `error: ...` and each cause on its own line to stderr.
///
/// A cause is skipped when the message before it already ends with its text, as
/// `ndarray_npy::ReadNpzError` does with the zip or npy error that it wraps.
pub fn print_error(error: &anyhow::Error) {
    eprintln!("error: {error}");
    let mut previous = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !repeats(&previous, &text) {
            eprintln!("  caused by: {text}");
        }
        previous = text;
    }
}

/// Returns whether `message` is `cause` or ends with `: {cause}`.
fn repeats(message: &str, cause: &str) -> bool {
    message == cause
        || message
            .strip_suffix(cause)
            .is_some_and(|head| head.ends_with(": "))
}

/// Returns 2 when the error comes from invalid input (a dataset file, a sidecar, a store
/// file or settings that cannot be used), otherwise 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let bad_input = error.chain().any(|cause| {
        cause.is::<DatasetError>()
            || cause.is::<FingerprintError>()
            || cause
                .downcast_ref::<ImportError>()
                .is_some_and(ImportError::is_invalid_input)
            || cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_invalid_input)
            || cause
                .downcast_ref::<clarify::runner::RunnerError>()
                .is_some_and(clarify::runner::RunnerError::is_invalid_input)
            || cause
                .downcast_ref::<clarify::registry::RegistryError>()
                .is_some_and(clarify::registry::RegistryError::is_invalid_input)
            || cause.is::<clarify::params::ParamsError>()
            || cause
                .downcast_ref::<clarify::node::NodeError>()
                .is_some_and(clarify::node::NodeError::is_invalid_input)
            || cause
                .downcast_ref::<BenchError>()
                .is_some_and(BenchError::is_invalid_input)
            || cause
                .downcast_ref::<clarify::bag::BagError>()
                .is_some_and(clarify::bag::BagError::is_invalid_input)
            || cause
                .downcast_ref::<clarify::recorder::RecorderError>()
                .is_some_and(|error| {
                    matches!(error, clarify::recorder::RecorderError::Config { .. })
                })
            || cause
                .downcast_ref::<clarify::train::TrainError>()
                .is_some_and(clarify::train::TrainError::is_invalid_input)
    });
    if bad_input { 2 } else { 1 }
}

/// Parses a count that must be at least 1.
fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_repeated_at_end_of_message_detected() {
        assert!(repeats("zip file error: bad archive", "bad archive"));
        assert!(repeats("bad archive", "bad archive"));
        assert!(!repeats("found 5", "5"));
        assert!(!repeats("failed to open dataset x.npz", "No such file"));
    }
}
