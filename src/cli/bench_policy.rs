//! `clarify bench policy`: success rates of policies trained on the clarity benchmark's
//! answers.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clarify::bench::{
    BenchContext, ClaritySettings, DEFAULT_BUDGET, DEFAULT_EPSILON, Method, RunCache,
};
use clarify::learn::RewardModelConfig;
use clarify::learn::iql::{IqlConfig, IqlPreset};
use clarify::segment::DEFAULT_SEGMENT_LENGTH;
use clarify::select::{DEFAULT_POOL_FACTOR, DEFAULT_QUERIES_PER_ROUND};
use clarify::train::policy_bench::{
    self, DEFAULT_EVAL_EPISODES, DEFAULT_EVAL_SEED, PolicyBenchEvent, PolicySettings,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::encoder_args::EncoderArgs;
use super::parse_positive;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Dataset file: an NPZ archive in the D4RL field layout with true rewards and success
    /// flags, from the Meta-World task given by --task.
    #[arg(long, value_name = "FILE", default_value = "data/dial-turn.npz")]
    dataset: PathBuf,

    /// Meta-World v3 task of the dataset, for the evaluation episodes. Default: the
    /// dataset file's stem (dial-turn for data/dial-turn.npz).
    #[arg(long, value_name = "TASK")]
    task: Option<String>,

    /// ε of the clarity runs' skip teacher.
    #[arg(long, value_name = "EPSILON", default_value_t = DEFAULT_EPSILON)]
    epsilon: f64,

    /// Queries per clarity run, the first round included.
    #[arg(long, value_name = "QUERIES", default_value_t = DEFAULT_BUDGET, value_parser = parse_positive)]
    budget: usize,

    /// Queries per round M of the clarity runs; the reward model replays the answers in
    /// rounds of this size.
    #[arg(long, value_name = "QUERIES", default_value_t = DEFAULT_QUERIES_PER_ROUND, value_parser = parse_positive)]
    queries_per_round: usize,

    /// Pool factor L of the clarity runs.
    #[arg(long, value_name = "L", default_value_t = DEFAULT_POOL_FACTOR, value_parser = parse_positive)]
    pool_factor: usize,

    /// Segment length H in steps.
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_SEGMENT_LENGTH, value_parser = parse_positive)]
    segment_length: usize,

    /// Run seeds, comma-separated.
    #[arg(long, value_name = "SEEDS", value_delimiter = ',', default_values_t = [0_u64, 1, 2])]
    seeds: Vec<u64>,

    /// Methods, comma-separated: clarify, mr, oprl.
    #[arg(
        long,
        value_name = "METHODS",
        value_delimiter = ',',
        default_value = "clarify,mr,oprl"
    )]
    methods: Vec<Method>,

    /// Leave out the oracle row (IQL on the true rewards).
    #[arg(long)]
    no_oracle: bool,

    /// Encoder settings of CLARIFY's clarity runs.
    #[command(flatten)]
    encoder: EncoderArgs,

    /// IQL preset: cpu (30,000 gradient steps) or paper (210,000).
    #[arg(long, value_name = "PRESET", default_value = "cpu", value_parser = parse_iql_preset)]
    policy_preset: IqlPreset,

    /// IQL gradient steps (replaces the preset's).
    #[arg(long, value_name = "STEPS", value_parser = parse_positive)]
    policy_steps: Option<usize>,

    /// Evaluation episodes per policy.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVAL_EPISODES, value_parser = parse_positive)]
    eval_episodes: usize,

    /// Seed of the first evaluation episode; episode i uses SEED + i.
    #[arg(long, value_name = "SEED", default_value_t = DEFAULT_EVAL_SEED)]
    eval_seed: u64,

    /// Folder of the clarity benchmark's cached runs, whose answers train the reward
    /// models. Missing runs are run and added.
    #[arg(long, value_name = "DIR", default_value = "target/bench-cache/clarity")]
    clarity_cache_dir: PathBuf,

    /// Folder of the cached policy runs and their policies.
    #[arg(long, value_name = "DIR", default_value = "target/bench-cache/policy")]
    cache_dir: PathBuf,

    /// JSON file for the results. Default: report.json in the cache folder.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Python interpreter that runs the evaluator.
    #[arg(long, value_name = "PYTHON", default_value = ".venv/bin/python")]
    python: PathBuf,

    /// Folder of the clarify_sim package.
    #[arg(long, value_name = "DIR", default_value = "sim")]
    sim_dir: PathBuf,

    /// Threads per ONNX Runtime operator in the clarity runs; 0 lets ONNX Runtime choose.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn parse_iql_preset(text: &str) -> Result<IqlPreset, String> {
    match text.to_ascii_lowercase().as_str() {
        "cpu" => Ok(IqlPreset::Cpu),
        "paper" => Ok(IqlPreset::Paper),
        _ => Err(format!("invalid preset {text:?}: expected cpu or paper")),
    }
}

pub fn run(args: &PolicyArgs) -> anyhow::Result<()> {
    let encoder = args.encoder.config();
    let clarity = ClaritySettings {
        epsilon: args.epsilon,
        budget: args.budget,
        queries_per_round: args.queries_per_round,
        pool_factor: args.pool_factor,
        segment_length: args.segment_length,
        seeds: args.seeds.clone(),
        methods: args.methods.clone(),
        encoder_preset: args.encoder.encoder_preset,
        encoder,
        reward: RewardModelConfig::default(),
        ..ClaritySettings::default()
    };
    let task = match &args.task {
        Some(task) => task.clone(),
        None => args
            .dataset
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .context("the dataset path has no file name: pass --task")?,
    };
    let mut iql = IqlConfig::preset(args.policy_preset);
    if let Some(steps) = args.policy_steps {
        iql.gradient_steps = steps;
    }
    let settings = PolicySettings {
        task,
        iql,
        eval_episodes: args.eval_episodes,
        eval_seed: args.eval_seed,
        python: args.python.clone(),
        sim_dir: args.sim_dir.clone(),
        oracle: !args.no_oracle,
    };
    let context = BenchContext::load(&args.dataset, clarity, args.threads).with_context(|| {
        format!(
            "failed to prepare the benchmark on {}",
            args.dataset.display()
        )
    })?;
    let clarity_cache = RunCache::new(&args.clarity_cache_dir);

    let runs = context.settings.seeds.len()
        * (context.settings.methods.len() + usize::from(settings.oracle));
    let bar = progress_bar(runs as u64);
    let report = policy_bench::run_policy_bench(
        &context,
        &clarity_cache,
        &settings,
        &args.cache_dir,
        &mut |event| match event {
            PolicyBenchEvent::ClarityRun { method, seed } => {
                bar.set_message(format!("clarity run {method} seed {seed}"));
                tracing::info!(%method, seed, "running a missing clarity run");
            }
            PolicyBenchEvent::Started { source, seed } => {
                bar.set_message(format!("{} seed {seed}: training", source.label()));
            }
            PolicyBenchEvent::Cached { .. } => bar.inc(1),
            PolicyBenchEvent::Training(progress) => {
                if progress.total > 0 {
                    let stage = serde_json::to_value(progress.stage).unwrap_or_default();
                    bar.set_message(format!(
                        "{} {}/{}",
                        stage.as_str().unwrap_or_default(),
                        progress.step,
                        progress.total
                    ));
                }
            }
            PolicyBenchEvent::Evaluating { source, seed } => {
                bar.set_message(format!("{} seed {seed}: evaluating", source.label()));
            }
            PolicyBenchEvent::Finished(run) => {
                bar.inc(1);
                tracing::info!(
                    source = run.source.label(),
                    seed = run.seed,
                    success_rate_any = run.success_rate_any,
                    reward_seconds = run.reward_seconds,
                    policy_seconds = run.policy_seconds,
                    eval_seconds = run.eval_seconds,
                    "finished a policy run"
                );
            }
        },
    )?;
    bar.finish_and_clear();

    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.cache_dir.join("report.json"));
    if let Some(folder) = output
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    fs::write(&output, json).with_context(|| format!("cannot write {}", output.display()))?;
    let mut stdout = io::stdout().lock();
    write!(stdout, "{}", report.to_markdown())?;
    writeln!(stdout, "\nResults: {}", output.display())?;
    stdout.flush()?;
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} runs {msg} ({elapsed})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}
