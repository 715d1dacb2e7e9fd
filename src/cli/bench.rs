//! `clarify bench ...`: benchmarks with a simulated teacher.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use clarify::bench::{
    self, BenchContext, ClaritySettings, DEFAULT_BUDGET, DEFAULT_EPSILON, Method, Progress,
    RunCache,
};
use clarify::learn::RewardModelConfig;
use clarify::segment::DEFAULT_SEGMENT_LENGTH;
use clarify::select::{DEFAULT_POOL_FACTOR, DEFAULT_QUERIES_PER_ROUND};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::info;

use super::encoder_args::EncoderArgs;
use super::parse_positive;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Compare the query clarity ratio of CLARIFY, MR and OPRL on one dataset.
    ///
    /// Runs the iterative schedule for each method and seed with the ε-skip teacher, whose
    /// threshold comes from the dataset's true rewards. Every method starts with the same
    /// random round. Prints a Markdown table (mean ± std over seeds) and writes every round
    /// of every run as JSON. Finished runs are cached, so an interrupted benchmark resumes
    /// where it stopped.
    Clarity(ClarityArgs),

    /// Compare the success rate of policies trained on the clarity runs' answers.
    ///
    /// For CLARIFY, MR and OPRL, replays each clarity run's answers into a new reward
    /// model, relabels the dataset, trains an IQL policy and evaluates it in the simulator;
    /// the oracle trains IQL on the true rewards. Missing clarity runs are run first.
    /// Prints a Markdown table (mean ± std over seeds) and caches every finished policy run.
    Policy(Box<super::bench_policy::PolicyArgs>),
}

#[derive(Debug, Args)]
pub struct ClarityArgs {
    /// Dataset file: an NPZ archive in the D4RL field layout with true rewards.
    #[arg(long, value_name = "FILE", default_value = "data/dial-turn.npz")]
    dataset: PathBuf,

    /// ε of the skip teacher: it cannot tell segments apart whose returns differ by at most
    /// ε · H · (mean step reward).
    #[arg(long, value_name = "EPSILON", default_value_t = DEFAULT_EPSILON)]
    epsilon: f64,

    /// Queries per run, the first round included.
    #[arg(long, value_name = "QUERIES", default_value_t = DEFAULT_BUDGET, value_parser = parse_positive)]
    budget: usize,

    /// Queries per round M.
    #[arg(long, value_name = "QUERIES", default_value_t = DEFAULT_QUERIES_PER_ROUND, value_parser = parse_positive)]
    queries_per_round: usize,

    /// Pool factor L: OPRL and CLARIFY rounds draw M · L candidate pairs.
    #[arg(long, value_name = "L", default_value_t = DEFAULT_POOL_FACTOR, value_parser = parse_positive)]
    pool_factor: usize,

    /// Segment length H in steps.
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_SEGMENT_LENGTH, value_parser = parse_positive)]
    segment_length: usize,

    /// Run seeds, comma-separated.
    #[arg(long, value_name = "SEEDS", value_delimiter = ',', default_values_t = [0_u64, 1, 2])]
    seeds: Vec<u64>,

    /// Methods to compare, comma-separated: clarify, mr, oprl.
    #[arg(long, value_name = "METHODS", value_delimiter = ',', default_value = "clarify,mr,oprl", value_parser = parse_method)]
    methods: Vec<Method>,

    #[command(flatten)]
    encoder: EncoderArgs,

    /// Folder of cached runs and of the models of the run in progress.
    #[arg(long, value_name = "DIR", default_value = "target/bench-cache/clarity")]
    cache_dir: PathBuf,

    /// JSON file for the results. Default: report.json in the cache folder.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Threads per ONNX Runtime operator; 0 lets ONNX Runtime choose.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn parse_method(text: &str) -> Result<Method, String> {
    text.parse()
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Clarity(args) => clarity(&args),
        BenchCommand::Policy(args) => super::bench_policy::run(&args),
    }
}

fn clarity(args: &ClarityArgs) -> anyhow::Result<()> {
    let settings = ClaritySettings {
        epsilon: args.epsilon,
        budget: args.budget,
        queries_per_round: args.queries_per_round,
        pool_factor: args.pool_factor,
        segment_length: args.segment_length,
        seeds: args.seeds.clone(),
        methods: args.methods.clone(),
        encoder_preset: args.encoder.encoder_preset,
        encoder: args.encoder.config(),
        reward: RewardModelConfig::default(),
        ..ClaritySettings::default()
    };
    let context = BenchContext::load(&args.dataset, settings, args.threads).with_context(|| {
        format!(
            "failed to prepare the benchmark on {}",
            args.dataset.display()
        )
    })?;
    let cache = RunCache::new(&args.cache_dir);

    let settings = &context.settings;
    let total = (settings.methods.len() * settings.seeds.len() * settings.round_count()) as u64;
    let bar = progress_bar(total);
    let report = bench::run_clarity(&context, &cache, &mut |event| match event {
        Progress::RunStarted {
            method,
            seed,
            rounds,
        } => bar.set_message(format!("{method} seed {seed}: round 1/{rounds}")),
        Progress::RunCached { rounds, .. } => bar.inc(rounds as u64),
        Progress::RoundFinished {
            method,
            seed,
            record,
        } => {
            bar.inc(1);
            let rounds = settings.round_count();
            let next = (record.round + 2).min(rounds);
            bar.set_message(format!("{method} seed {seed}: round {next}/{rounds}"));
        }
    })?;
    bar.finish_and_clear();

    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.cache_dir.join("report.json"));
    write_report(&output, &report)
        .with_context(|| format!("failed to write the results to {}", output.display()))?;
    info!(path = %output.display(), "wrote the benchmark results");

    let mut stdout = io::stdout().lock();
    stdout.write_all(report.to_markdown().as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Creates a progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} rounds, eta {eta} {msg}",
    )
    .expect("the progress template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_secs(1));
    bar
}

fn write_report(path: &Path, report: &bench::ClarityReport) -> anyhow::Result<()> {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        fs::create_dir_all(folder)?;
    }
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    fs::write(path, json)?;
    Ok(())
}
