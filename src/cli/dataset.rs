//! `clarify dataset ...`: dataset validation and fingerprints.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use clarify::fingerprint::{self, SampledPair};
use clarify::segment::DEFAULT_SEGMENT_LENGTH;
use clarify::{Dataset, EpisodeEnd, Fingerprint, FingerprintConfig};
use tracing::info;

use super::parse_positive;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Validate a dataset file and print its fingerprint.
    ///
    /// Checks every field against the layout (dtype, shape, finite values, episode ids),
    /// then prints the episode, segment, success and return statistics and the share of
    /// random segment pairs that the ε-skip teachers (ε = 0.5, 0.7) answer clearly.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Dataset file: an NPZ archive in the D4RL field layout.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Print the fingerprint as JSON, with the keys of the dataset's JSON sidecar.
    #[arg(long)]
    json: bool,

    /// Segment length H in steps.
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_SEGMENT_LENGTH, value_parser = parse_positive)]
    segment_length: usize,

    /// Number of random segment pairs that the ε-skip teachers answer.
    #[arg(long, value_name = "N", default_value_t = fingerprint::DEFAULT_PAIR_COUNT, value_parser = parse_positive)]
    pairs: usize,

    /// Seed of the SplitMix64 generator that draws the segment pairs.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pair_seed: u64,

    /// Write the sampled pairs to FILE as JSON lines: segment indices a and b, their
    /// returns, and each ε-skip teacher's answer.
    #[arg(long, value_name = "FILE")]
    pairs_out: Option<PathBuf>,
}

pub fn run(command: DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Inspect(args) => inspect(&args),
    }
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let dataset = Dataset::load(&args.file)?;
    info!(
        path = %args.file.display(),
        steps = dataset.step_count(),
        episodes = dataset.episodes().len(),
        "dataset is valid"
    );

    let config = FingerprintConfig {
        segment_length: args.segment_length,
        pairs: args.pairs,
        pair_seed: args.pair_seed,
    };
    let report = fingerprint::compute(&dataset, &config)
        .with_context(|| format!("failed to fingerprint {}", args.file.display()))?;

    if let Some(path) = &args.pairs_out {
        write_pairs(path, &report.pairs)
            .with_context(|| format!("failed to write the pair dump to {}", path.display()))?;
        info!(path = %path.display(), pairs = report.pairs.len(), "wrote pair dump");
    }

    let mut stdout = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report.fingerprint)?;
        writeln!(stdout)?;
    } else {
        write_summary(&mut stdout, &dataset, &report.fingerprint)?;
    }
    stdout.flush()?;
    Ok(())
}

/// Writes one JSON object per line, in sampling order.
fn write_pairs(path: &Path, pairs: &[SampledPair]) -> anyhow::Result<()> {
    let mut writer = BufWriter::new(File::create(path)?);
    for pair in pairs {
        serde_json::to_writer(&mut writer, pair)?;
        writeln!(writer)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes the fingerprint as aligned text for a person to read.
fn write_summary(
    out: &mut impl Write,
    dataset: &Dataset,
    fingerprint: &Fingerprint,
) -> io::Result<()> {
    let episodes = dataset.episodes();
    let count_ends = |kind| episodes.iter().filter(|e| e.end == kind).count();

    writeln!(out, "dataset           {}", dataset.path().display())?;
    writeln!(
        out,
        "steps             {} (observation dim {}, action dim {})",
        fingerprint.steps,
        dataset.observation_dim(),
        dataset.action_dim()
    )?;
    writeln!(
        out,
        "episodes          {} ({} time limit, {} task end, {} without end flag)",
        fingerprint.episodes,
        count_ends(EpisodeEnd::TimedOut),
        count_ends(EpisodeEnd::Terminated),
        count_ends(EpisodeEnd::Unmarked)
    )?;
    writeln!(
        out,
        "segments          {} of {} steps ({} episodes shorter than {} steps skipped)",
        fingerprint.segments,
        fingerprint.segment_length,
        fingerprint.short_episodes,
        fingerprint.segment_length
    )?;
    match (fingerprint.success_rate_any, fingerprint.success_rate_final) {
        (Some(any), Some(last)) => writeln!(
            out,
            "success rate      {any:.4} at any step, {last:.4} at the last step"
        )?,
        _ => writeln!(out, "success rate      unknown (no success field)")?,
    }
    writeln!(out, "mean step reward  {:.6}", fingerprint.mean_step_reward)?;

    let stats = &fingerprint.episode_return;
    writeln!(
        out,
        "episode return    min {:.4}, max {:.4}, mean {:.4}, std {:.4}",
        stats.min, stats.max, stats.mean, stats.std
    )?;
    write_histogram(out, &stats.histogram.edges, &stats.histogram.counts)?;

    let shares: Vec<String> = fingerprint
        .clear_share
        .0
        .iter()
        .map(|(epsilon, share)| format!("ε={epsilon}: {share:.4}"))
        .collect();
    writeln!(
        out,
        "clear share       {} ({} pairs, seed {})",
        shares.join(", "),
        fingerprint.pairs,
        fingerprint.pair_seed
    )
}

/// Writes one line per bin: its range, count and a bar scaled to the largest count.
fn write_histogram(out: &mut impl Write, edges: &[f64], counts: &[usize]) -> io::Result<()> {
    const BAR_WIDTH: usize = 40;
    let largest = counts.iter().copied().max().unwrap_or(0).max(1);

    for (bin, &count) in counts.iter().enumerate() {
        let closing = if bin + 1 == counts.len() { ']' } else { ')' };
        let range = format!("[{:.4}, {:.4}{closing}", edges[bin], edges[bin + 1]);
        let bar = "#".repeat(count * BAR_WIDTH / largest);
        let line = format!("  {range:<28} {count:>7} {bar}");
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
