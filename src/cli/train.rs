//! `clarify train`: the offline training job, from a segment store to an installed model
//! set.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use clarify::train::{self, Progress, Stage, TrainError, TrainPreset, TrainSettings};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::parse_positive;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Segment store database (SQLite) with the dataset and the operator's answers.
    #[arg(long, value_name = "DB")]
    store: PathBuf,

    /// Model registry folder; the new set is installed as <DIR>/<VERSION>.
    #[arg(long, value_name = "DIR", default_value = "models")]
    models: PathBuf,

    /// Network sizes and schedule lengths: cpu (small encoder, 30,000 policy steps) or
    /// paper (the CLARIFY paper's settings).
    #[arg(long, value_name = "PRESET", default_value = "cpu")]
    preset: TrainPreset,

    /// Seed of the encoder, the reward model and the policy.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,

    /// Dataset of the store to train on, by id or name. Needed when the store contains more
    /// than one.
    #[arg(long, value_name = "ID_OR_NAME")]
    dataset: Option<String>,

    /// Version name of the new set. Default: the UTC time, YYYYMMDD-HHMMSS.
    #[arg(long, value_name = "NAME")]
    version: Option<String>,

    /// Make the new set the active one (the registry's `current`).
    #[arg(long)]
    activate: bool,

    /// Install the new set without making it active, and reject --activate. The default
    /// already leaves `current` alone. A supervising program passes this flag, so that
    /// extra arguments cannot switch the active set before it has validated the new one.
    #[arg(long, conflicts_with = "activate")]
    no_activate: bool,

    /// Row of the store's training_runs table to close when the job ends, opened by a
    /// supervising program. Default: the job opens a new row.
    #[arg(long, value_name = "ID")]
    run_id: Option<i64>,

    /// Versions the registry keeps; older ones are removed, never the active or previous
    /// one.
    #[arg(long, value_name = "N", default_value_t = train::DEFAULT_KEEP, value_parser = parse_positive)]
    keep: usize,

    /// Install a set whose observation or action size differs from the active set's.
    #[arg(long)]
    allow_dimension_change: bool,

    /// The job fails with fewer left or right answers than this.
    #[arg(long, value_name = "N", default_value_t = train::DEFAULT_MIN_CLEAR_ANSWERS, value_parser = parse_positive)]
    min_clear_answers: usize,

    /// Answers per replayed round: the answers are replayed in the order given, and the
    /// models train after each round of this many, as in the live loop.
    #[arg(long, value_name = "N", default_value_t = train::DEFAULT_REPLAY_ROUND, value_parser = parse_positive)]
    replay_round: usize,

    /// Policy gradient steps (replaces the preset's).
    #[arg(long, value_name = "STEPS", value_parser = parse_positive)]
    policy_steps: Option<usize>,

    /// Encoder iterations after the first replayed round (replaces the preset's).
    #[arg(long, value_name = "N")]
    encoder_iterations: Option<usize>,

    /// Encoder iterations after each later replayed round (replaces the preset's).
    #[arg(long, value_name = "N")]
    encoder_later_iterations: Option<usize>,

    /// JSON file that changes settings of the preset: an object with any of the keys
    /// "encoder", "reward" and "iql", each an object of the fields to change.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,

    /// Policy gradient steps between progress lines.
    #[arg(long, value_name = "STEPS", default_value_t = 1000, value_parser = parse_positive)]
    progress_interval: usize,

    /// Folder of IQL checkpoints, written every 5,000 policy steps. A job that finds a
    /// checkpoint there trains the encoder and reward model again, which the seed makes
    /// repeatable, and resumes the policy from it. A checkpoint of other data is replaced.
    #[arg(long, value_name = "DIR")]
    policy_checkpoints: Option<PathBuf>,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    let bar = ProgressDisplay::new();
    let mut stdout = io::stdout().lock();
    let mut write_failed = None;
    let outcome = train::run_job(&args.store, &args.models, &settings, &mut |progress| {
        bar.update(progress);
        let line = serde_json::to_string(progress).expect("progress serialises to JSON");
        if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            write_failed.get_or_insert(error);
        }
    });
    bar.finish();
    let outcome = outcome.with_context(|| {
        format!(
            "training on {} into {} failed",
            args.store.display(),
            args.models.display()
        )
    })?;
    if let Some(error) = write_failed {
        return Err(error).context("cannot write progress to stdout");
    }
    tracing::info!(
        version = outcome.set.version,
        path = %outcome.set.path.display(),
        activated = outcome.activated,
        "installed model set"
    );
    Ok(())
}

fn settings(args: &TrainArgs) -> anyhow::Result<TrainSettings> {
    let mut settings = TrainSettings::preset(args.preset);
    if let Some(path) = &args.settings {
        apply_settings_file(&mut settings, path)?;
    }
    settings.seed = args.seed;
    settings.dataset = args.dataset.clone();
    settings.run_id = args.run_id;
    settings.version = args.version.clone();
    settings.activate = args.activate && !args.no_activate;
    settings.keep = args.keep;
    settings.allow_dimension_change = args.allow_dimension_change;
    settings.min_clear_answers = args.min_clear_answers;
    settings.replay_round = args.replay_round;
    settings.iql_progress_interval = args.progress_interval;
    settings.policy_checkpoint_dir = args.policy_checkpoints.clone();
    if let Some(steps) = args.policy_steps {
        settings.iql.gradient_steps = steps;
    }
    if let Some(iterations) = args.encoder_iterations {
        settings.encoder.first_round_iterations = iterations;
    }
    if let Some(iterations) = args.encoder_later_iterations {
        settings.encoder.later_round_iterations = iterations;
    }
    Ok(settings)
}

/// Merges the fields of a settings file into the preset's settings.
fn apply_settings_file(settings: &mut TrainSettings, path: &Path) -> anyhow::Result<()> {
    let invalid = |message: String| {
        TrainError::Settings(format!("settings file {}: {message}", path.display()))
    };
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    let document: Value =
        serde_json::from_str(&text).map_err(|error| invalid(format!("not valid JSON: {error}")))?;
    let Value::Object(parts) = document else {
        return Err(invalid("expected a JSON object".to_owned()).into());
    };
    for (key, changes) in parts {
        match key.as_str() {
            "encoder" => {
                settings.encoder = merged(&settings.encoder, changes, "encoder").map_err(invalid)?
            }
            "reward" => {
                settings.reward = merged(&settings.reward, changes, "reward").map_err(invalid)?
            }
            "iql" => settings.iql = merged(&settings.iql, changes, "iql").map_err(invalid)?,
            other => {
                return Err(invalid(format!(
                    "unknown key {other:?}: expected encoder, reward or iql"
                ))
                .into());
            }
        }
    }
    Ok(())
}

fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    changes: Value,
    part: &str,
) -> Result<T, String> {
    let Value::Object(changes) = changes else {
        return Err(format!("{part} is not an object of settings"));
    };
    let mut value = serde_json::to_value(base).expect("settings serialise to JSON");
    let object = value.as_object_mut().expect("settings are a JSON object");
    for (field, setting) in changes {
        object.insert(field, setting);
    }
    serde_json::from_value(value).map_err(|error| format!("{part}: {error}"))
}

/// A progress bar on stderr, shown only when stderr is a terminal.
struct ProgressDisplay {
    bar: Option<ProgressBar>,
}

impl ProgressDisplay {
    fn new() -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar
        });
        Self { bar }
    }

    fn update(&self, progress: &Progress) {
        let Some(bar) = &self.bar else { return };
        let stage = serde_json::to_value(progress.stage)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        bar.set_prefix(stage);
        bar.set_length(progress.total as u64);
        bar.set_position(progress.step as u64);
        let losses: Vec<String> = progress
            .losses
            .iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(name, value)| format!("{name} {value:.4}"))
            .collect();
        bar.set_message(losses.join(" "));
        if progress.stage == Stage::Done {
            bar.finish_and_clear();
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
