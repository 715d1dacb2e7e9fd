//! Latency of the policy runner through DDS: a stand-in robot publishes observations at the
//! control rate, the runner (same process, its own DDS participant) publishes actions, and
//! the robot matches each action to its observation. Prints one JSON object with the
//! percentiles of observation published → action received, and of the runner's own step
//! time (policy run and publish).
//!
//! The policy copies observation entry 0 (a sequence number) to action entry 0, so actions
//! identify their observation. The runner steps on a fixed clock, so the end-to-end figure
//! includes the wait for the next step, up to one control period.
//!
//! Usage (a private network namespace is required):
//! `.ci/netns-run cargo run --release --example runner_latency -- [COUNT] [RATE_HZ]`

#[path = "../tests/registry_fixture.rs"]
mod registry_fixture;
#[path = "../tests/transport_netns.rs"]
mod transport_netns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::msg::Float32MultiArray;
use clarify::registry::Registry;
use clarify::runner::{self, RunnerConfig};
use clarify::transport::dds::DdsNode;
use clarify::transport::{NodeConfig, Publish, QosConfig, Subscribe, Transport};
use registry_fixture::{LinearPolicy, temp_dir};

const DOMAIN: u16 = 61;

fn main() -> Result<()> {
    transport_netns::require_private_network();
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3000);
    let rate_hz: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100.0);
    if count == 0 || rate_hz.is_nan() || rate_hz <= 0.0 {
        bail!("usage: runner_latency [COUNT >= 1] [RATE_HZ > 0]");
    }

    let models = temp_dir("runner-latency");
    let registry = Registry::open(&models, 2)?;
    let source = temp_dir("runner-latency-source");
    LinearPolicy {
        bounds: (-1.0e7, 1.0e7),
        ..LinearPolicy::default()
    }
    .write_set(&source, "echo")?;
    registry.install_from_dir("echo", &source)?;
    registry.activate("echo")?;

    let config = RunnerConfig {
        models_dir: models,
        control_rate_hz: rate_hz,
        max_observation_age_s: 0.5,
        start_enabled: true,
        model_update_topic: String::new(),
        infer: InferConfig {
            execution_providers: vec![ExecutionProviderKind::Cpu],
            intra_op_threads: 1,
            ..InferConfig::default()
        },
        ..RunnerConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runner_stop = Arc::clone(&stop);
    let runner_config = config.clone();
    let runner_thread = thread::spawn(move || -> Result<runner::RunStats> {
        let runtime = Runtime::new(runner_config.infer.clone())?;
        let mut node = DdsNode::new(NodeConfig {
            name: "clarify_policy".into(),
            namespace: "/".into(),
            domain_id: DOMAIN,
        })?;
        Ok(runner::run(
            &mut node,
            &runner_config,
            runtime,
            &runner_stop,
        )?)
    });

    let measured = measure(&config, count, rate_hz);
    stop.store(true, Ordering::SeqCst);
    let stats = runner_thread
        .join()
        .map_err(|_| anyhow::anyhow!("runner thread panicked"))??;
    let (mut latencies, sent) = measured?;

    latencies.sort_by(f64::total_cmp);
    let mut steps = stats.step_seconds.clone();
    steps.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "rate_hz": rate_hz,
        "observations_sent": sent,
        "actions_matched": latencies.len(),
        "end_to_end_ms": {
            "p50": percentile(&latencies, 0.50) * 1e3,
            "p90": percentile(&latencies, 0.90) * 1e3,
            "p99": percentile(&latencies, 0.99) * 1e3,
            "max": latencies.last().copied().unwrap_or(f64::NAN) * 1e3,
        },
        "runner_step_us": {
            "p50": percentile(&steps, 0.50) * 1e6,
            "p99": percentile(&steps, 0.99) * 1e6,
        },
        "runner": {
            "steps": stats.steps,
            "actions": stats.actions,
            "safe_actions": stats.safe_actions,
            "overruns": stats.overruns,
        },
    });
    println!("{report}");
    Ok(())
}

/// Publishes `count` observations at `rate_hz` and returns the latency of each matched
/// action in seconds, and the number of observations sent.
fn measure(config: &RunnerConfig, count: usize, rate_hz: f64) -> Result<(Vec<f64>, usize)> {
    let mut node = DdsNode::new(NodeConfig {
        name: "robot".into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let observations = node.create_publisher::<Float32MultiArray>(
        &config.observation_topic,
        &config.observation_qos,
    )?;
    let actions = node.create_subscription::<Float32MultiArray>(
        &config.action_topic,
        &QosConfig {
            depth: 1000,
            ..QosConfig::default()
        },
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.subscription_count(&config.observation_topic)? == 0
        || node.publisher_count(&config.action_topic)? == 0
    {
        if Instant::now() > deadline {
            bail!("the runner was not discovered within 20 s");
        }
        thread::sleep(Duration::from_millis(20));
    }

    // Actions are timestamped on their own thread, so waiting to publish does not delay them.
    let done = Arc::new(AtomicBool::new(false));
    let receiver_done = Arc::clone(&done);
    let receiver = thread::spawn(move || -> Result<Vec<(usize, Instant)>> {
        let mut received = Vec::new();
        while !receiver_done.load(Ordering::SeqCst) {
            if let Some(action) = actions.recv_timeout(Duration::from_millis(50))? {
                let id = action.data.first().copied().context("empty action")?;
                received.push((id as usize, Instant::now()));
            }
        }
        Ok(received)
    });

    // Warm-up: observations with id 0 are not measured.
    let period = Duration::from_secs_f64(1.0 / rate_hz);
    let mut sent_at = vec![None; count + 1];
    let start = Instant::now();
    for (id, sent) in sent_at.iter_mut().enumerate() {
        let due = start + period.mul_f64(id as f64 + 0.5);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        *sent = Some(Instant::now());
        observations.publish(Float32MultiArray {
            data: vec![id as f32, 0.0, 0.0],
            ..Float32MultiArray::default()
        })?;
    }
    thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;

    let mut matched = vec![false; count + 1];
    let mut latencies = Vec::new();
    for (id, at) in received {
        if id == 0 || id > count || matched[id] {
            continue;
        }
        matched[id] = true;
        if let Some(sent) = sent_at[id] {
            latencies.push(at.saturating_duration_since(sent).as_secs_f64());
        }
    }
    Ok((latencies, count))
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}
