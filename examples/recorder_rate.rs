//! Throughput of the live recorder on DDS: publishes joint states and actions at a fixed
//! rate from one node, records them with another node of the same process, and prints
//! rates, drops and CPU share as JSON.
//!
//! Usage (DDS needs a private network namespace):
//!
//! ```text
//! .ci/netns-run cargo run --release --example recorder_rate -- [DURATION_SECS] [RATE_HZ]
//! ```
//!
//! Defaults: 60 s at 2000 Hz per topic, control rate 100 Hz, episodes of 500 steps.

#[path = "../tests/recorder_stream.rs"]
mod recorder_stream;

use std::time::Duration;

use anyhow::{Context, Result};
use clarify::store::Store;
use recorder_stream::{StreamSettings, check_accounting, run_stream};

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut arguments = std::env::args().skip(1);
    let duration_secs: f64 = match arguments.next() {
        Some(text) => text
            .parse()
            .with_context(|| format!("DURATION_SECS {text:?}: expected seconds"))?,
        None => 60.0,
    };
    let rate_hz: f64 = match arguments.next() {
        Some(text) => text
            .parse()
            .with_context(|| format!("RATE_HZ {text:?}: expected messages per second"))?,
        None => 2000.0,
    };
    let folder = tempfile::tempdir()?;
    let store = Store::open(folder.path().join("rate.sqlite"))?;
    let settings = StreamSettings {
        rate_hz,
        duration: Duration::from_secs_f64(duration_secs),
        control_rate_hz: 100.0,
        max_steps: 500,
        domain_id: 62,
    };

    let (report, _store) = run_stream(&settings, store)?;
    let accounting = check_accounting(&report);
    let mut json = serde_json::to_value(&report)?;
    json["accounting_ok"] = serde_json::Value::Bool(accounting.is_ok());
    if let Err(error) = &accounting {
        json["accounting_error"] = serde_json::Value::String(error.to_string());
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    accounting
}
