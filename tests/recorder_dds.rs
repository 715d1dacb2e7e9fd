//! The live recorder on DDS: 2 kHz joint states and actions for 5 s from another node of
//! this process, with invalid messages mixed in. Every message the subscriptions deliver
//! must be counted as recorded or as dropped with a reason, and every recorded step must
//! be in the store.
//!
//! Run through `.ci/netns-run`, which gives the test a private loopback-only network.

#[path = "transport_netns.rs"]
mod transport_netns;

#[path = "recorder_stream.rs"]
mod recorder_stream;

use std::time::Duration;

use anyhow::Result;
use clarify::recorder::DropReason;
use clarify::store::Store;
use recorder_stream::{ACTION_TOPIC, JOINT_TOPIC, StreamSettings, check_accounting, run_stream};

#[test]
fn two_khz_stream_is_fully_accounted_for() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store = Store::open(folder.path().join("rate.sqlite"))?;
    let settings = StreamSettings {
        rate_hz: 2000.0,
        duration: Duration::from_secs(5),
        control_rate_hz: 100.0,
        max_steps: 100,
        domain_id: 61,
    };

    let (report, _store) = run_stream(&settings, store)?;
    println!("{}", serde_json::to_string_pretty(&report)?);

    check_accounting(&report)?;
    let counters = &report.counters;
    let joints = counters.topic(JOINT_TOPIC).expect("joint topic");
    let actions = counters.topic(ACTION_TOPIC).expect("action topic");
    // Reliable QoS on loopback: the subscriptions deliver everything that was sent. A gap
    // here would be messages DDS lost before delivery, which the recorder cannot see.
    assert_eq!(joints.received, report.sent_joint_states, "{joints:?}");
    assert_eq!(actions.received, report.sent_actions, "{actions:?}");
    // With nothing lost, the drops are exactly the invalid messages.
    assert_eq!(
        joints.dropped_for(DropReason::NonFinite),
        report.sent_nan_joint_states
    );
    assert_eq!(
        actions.dropped_for(DropReason::WrongSize),
        report.sent_short_actions
    );
    assert_eq!(
        joints.dropped_total() + actions.dropped_total(),
        report.sent_nan_joint_states + report.sent_short_actions,
        "{counters:?}"
    );
    // About 5 s at 100 Hz in episodes of 100 steps.
    assert!(report.stored_steps >= 400, "{report:?}");
    assert!(report.stored_episodes >= 4, "{report:?}");
    Ok(())
}
