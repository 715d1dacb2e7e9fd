//! `clarify import`: dataset NPZ files and rosbag2 MCAP recordings into a segment store.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clarify::bag;
use clarify::recorder::{RecorderConfig, RecorderError};
use clarify::segment::DEFAULT_SEGMENT_LENGTH;
use clarify::store::{self, ImportOptions, ImportOutcome, ImportSummary, LoadedDataset, Store};

use super::parse_positive;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Dataset file: an NPZ archive in the D4RL field layout, as the generator writes or
    /// from elsewhere. A JSON sidecar with the same stem, if present, is stored with it.
    /// A `.mcap` file is a rosbag2 recording, recorded with --recorder-config.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Recorder settings (JSON) for a `.mcap` file: topics, control rate, episodes.
    #[arg(long, value_name = "JSON")]
    recorder_config: Option<PathBuf>,

    /// Segment store database (SQLite) to import into. The file is created when missing.
    #[arg(long, value_name = "DB")]
    store: PathBuf,

    /// Dataset name to record in the store. Defaults to the file stem.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Segment length H in steps for the summary's segment count and the count of episodes
    /// too short to give a segment. Every episode is stored whatever its length.
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_SEGMENT_LENGTH, value_parser = parse_positive)]
    segment_length: usize,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    if args
        .file
        .extension()
        .is_some_and(|extension| extension == "mcap")
    {
        return run_mcap(args);
    }
    // The file is validated before the store is opened, so that a failed import into a
    // store that does not exist yet leaves no new, empty database behind.
    let loaded = LoadedDataset::load(&args.file)?;
    let mut store = Store::open(&args.store)?;
    let options = ImportOptions {
        name: args.name.clone(),
        segment_length: args.segment_length,
    };
    let outcome = store::import_loaded(&mut store, loaded, &options)?;

    let mut stdout = io::stdout().lock();
    write_summary(&mut stdout, args, &outcome)?;
    stdout.flush()?;
    Ok(())
}

fn run_mcap(args: &ImportArgs) -> anyhow::Result<()> {
    let config_path = args.recorder_config.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{} is an MCAP recording: pass --recorder-config FILE with the recorder settings \
             (topics and control rate)",
            args.file.display()
        )
    })?;
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("failed to read {}", config_path.display()))?;
    let config: RecorderConfig =
        serde_json::from_str(&text).map_err(|error| RecorderError::Config {
            field: config_path.display().to_string(),
            value: error.to_string(),
            expected: "recorder settings as JSON".into(),
        })?;
    let mut store = Store::open(&args.store)?;
    let options = ImportOptions {
        name: args.name.clone(),
        segment_length: args.segment_length,
    };
    let (outcome, counters) = bag::import_mcap(&mut store, &args.file, &config, &options)?;

    let mut stdout = io::stdout().lock();
    write_summary(&mut stdout, args, &outcome)?;
    for topic in &counters.topics {
        writeln!(
            stdout,
            "topic             {} received {}, accepted {}, dropped {:?}",
            topic.topic, topic.received, topic.accepted, topic.dropped
        )?;
    }
    stdout.flush()?;
    Ok(())
}

fn write_summary(
    out: &mut impl Write,
    args: &ImportArgs,
    outcome: &ImportOutcome,
) -> io::Result<()> {
    let summary: &ImportSummary = outcome.summary();
    let dataset = &summary.dataset;

    match outcome {
        ImportOutcome::Imported(_) => writeln!(
            out,
            "imported {} into {} as {}",
            args.file.display(),
            args.store.display(),
            dataset.id
        )?,
        ImportOutcome::AlreadyImported(_) => writeln!(
            out,
            "already imported: {} has the same content as {} (imported from {}); nothing written",
            args.file.display(),
            dataset.id,
            dataset.meta.source_path.display()
        )?,
    }
    writeln!(out, "dataset id        {}", dataset.id.get())?;
    writeln!(out, "name              {}", dataset.meta.name)?;
    writeln!(out, "sha256            {}", dataset.meta.content_hash)?;
    writeln!(out, "episodes          {}", summary.episodes)?;
    writeln!(
        out,
        "steps             {} (observation dim {}, action dim {})",
        summary.steps, dataset.observation_dim, dataset.action_dim
    )?;
    writeln!(
        out,
        "segments          {} of {} steps ({} episodes shorter than {} steps skipped)",
        summary.segments, summary.segment_length, summary.short_episodes, summary.segment_length
    )?;
    let sidecar = if dataset.meta.sidecar_json.is_some() {
        "stored"
    } else {
        "none"
    };
    writeln!(out, "sidecar           {sidecar}")
}
