//! The policy runner's decisions without DDS, on real ONNX policies: safe action on
//! non-finite, stale or rejected input, no drive while disabled, clamping, the deadman
//! button, and model swaps that keep the running set when validation fails.

#[path = "registry_fixture.rs"]
mod registry_fixture;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::msg::{Float32MultiArray, Header, JointState};
use clarify::registry::{Expectation, Registry};
use clarify::runner::{
    CoreConfig, Decision, JointField, ObservationMapping, ObservationType, OnnxPolicy, Policy,
    PolicyCore, RunnerConfig, RunnerError, SafeReason,
};
use registry_fixture::{LinearPolicy, temp_dir};

const MAX_AGE: Duration = Duration::from_millis(100);

fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?)
}

/// Installs `policy` as `version` in a fresh registry and loads it validated.
fn load(policy: &LinearPolicy, version: &str) -> Result<(Registry, OnnxPolicy)> {
    let registry = Registry::open(temp_dir("runner-core"), 5)?;
    let source = temp_dir("runner-core-source");
    policy.write_set(&source, version)?;
    let set = registry.install_from_dir(version, &source)?;
    let loaded = OnnxPolicy::load(&runtime()?, &set, &Expectation::default())?;
    Ok((registry, loaded))
}

fn config() -> CoreConfig {
    CoreConfig {
        max_observation_age: MAX_AGE,
        safe_action: vec![0.25, -0.25],
        safe_action_on_disable: true,
        deadman_timeout: None,
    }
}

fn enabled_core(policy: &LinearPolicy) -> Result<PolicyCore> {
    let (_, loaded) = load(policy, "v1")?;
    let mut core = PolicyCore::new(Box::new(loaded), config()).map_err(anyhow::Error::msg)?;
    core.set_service_enabled(true);
    Ok(core)
}

#[test]
fn fresh_observation_drives_with_policy_action() -> Result<()> {
    let policy = LinearPolicy {
        gain: 0.5,
        bias: 0.1,
        ..LinearPolicy::default()
    };
    let mut core = enabled_core(&policy)?;
    let t0 = Instant::now();
    let observation = vec![0.4, -0.6, 3.0];

    core.observe(observation.clone(), t0);
    let decision = core.step(t0 + Duration::from_millis(10));

    let Decision::Act { action, clamped } = decision else {
        panic!("expected an action, got {decision:?}");
    };
    let expected = policy.expected(&observation);
    assert!(!clamped);
    for (a, e) in action.iter().zip(&expected) {
        assert!((a - e).abs() < 1e-6, "{action:?} vs {expected:?}");
    }
    Ok(())
}

#[test]
fn non_finite_observation_gives_safe_action() -> Result<()> {
    let mut core = enabled_core(&LinearPolicy::default())?;
    let t0 = Instant::now();

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        core.observe(vec![0.1, bad, 0.2], t0);
        let decision = core.step(t0);
        let Decision::Safe {
            action,
            reason: SafeReason::NonFinite { index, value },
        } = &decision
        else {
            panic!("{bad}: expected the safe action, got {decision:?}");
        };
        assert_eq!(action, &[0.25, -0.25]);
        assert_eq!(*index, 1);
        assert_eq!(value.to_bits(), bad.to_bits());
    }
    Ok(())
}

#[test]
fn stale_or_missing_observation_gives_safe_action() -> Result<()> {
    let mut core = enabled_core(&LinearPolicy::default())?;
    let t0 = Instant::now();

    let decision = core.step(t0);
    assert!(
        matches!(&decision, Decision::Safe { reason: SafeReason::NoObservation, action } if action == &[0.25, -0.25]),
        "{decision:?}"
    );

    core.observe(vec![0.1, 0.2, 0.3], t0);
    assert!(matches!(core.step(t0 + MAX_AGE), Decision::Act { .. }));
    let decision = core.step(t0 + MAX_AGE + Duration::from_millis(1));
    assert!(
        matches!(&decision, Decision::Safe { reason: SafeReason::Stale { age }, action }
            if *age > MAX_AGE && action == &[0.25, -0.25]),
        "{decision:?}"
    );
    Ok(())
}

#[test]
fn rejected_message_gives_safe_action() -> Result<()> {
    let mut core = enabled_core(&LinearPolicy::default())?;
    let t0 = Instant::now();
    core.observe(vec![0.1, 0.2, 0.3], t0);

    core.reject("JointState lacks joint \"wrist\"".into(), t0);
    let decision = core.step(t0);

    assert!(
        matches!(&decision, Decision::Safe { reason: SafeReason::Rejected { reason }, .. }
            if reason.contains("wrist")),
        "{decision:?}"
    );
    Ok(())
}

#[test]
fn disabled_runner_publishes_no_drive() -> Result<()> {
    let mut core = enabled_core(&LinearPolicy::default())?;
    let t0 = Instant::now();
    core.set_service_enabled(false);

    // Never enabled: nothing at all, whatever the observation.
    for step in 0..5 {
        core.observe(vec![0.5, 0.5, 0.5], t0);
        assert_eq!(core.step(t0 + Duration::from_millis(step)), Decision::Idle);
    }

    // Enabled, then disabled: one safe action (the stop command), then nothing.
    core.set_service_enabled(true);
    assert!(matches!(core.step(t0), Decision::Act { .. }));
    core.set_service_enabled(false);
    assert!(matches!(
        core.step(t0),
        Decision::Safe {
            reason: SafeReason::Disabled,
            ..
        }
    ));
    assert_eq!(core.step(t0), Decision::Idle);
    assert_eq!(core.step(t0).action(), None);
    Ok(())
}

#[test]
fn deadman_enables_only_while_held() -> Result<()> {
    let (_, loaded) = load(&LinearPolicy::default(), "v1")?;
    let mut core = PolicyCore::new(
        Box::new(loaded),
        CoreConfig {
            deadman_timeout: Some(Duration::from_millis(200)),
            safe_action_on_disable: false,
            ..config()
        },
    )
    .map_err(anyhow::Error::msg)?;
    core.set_service_enabled(true);
    let t0 = Instant::now();
    core.observe(vec![0.1, 0.1, 0.1], t0);

    assert_eq!(core.step(t0), Decision::Idle, "button never pressed");
    core.deadman(true, t0);
    assert!(matches!(
        core.step(t0 + Duration::from_millis(50)),
        Decision::Act { .. }
    ));
    // No fresh reading within the timeout counts as released.
    assert_eq!(core.step(t0 + Duration::from_millis(250)), Decision::Idle);
    core.deadman(true, t0 + Duration::from_millis(260));
    core.observe(vec![0.1, 0.1, 0.1], t0 + Duration::from_millis(260));
    assert!(matches!(
        core.step(t0 + Duration::from_millis(270)),
        Decision::Act { .. }
    ));
    core.deadman(false, t0 + Duration::from_millis(280));
    assert_eq!(core.step(t0 + Duration::from_millis(290)), Decision::Idle);
    // The service still gates the button.
    core.deadman(true, t0 + Duration::from_millis(300));
    core.set_service_enabled(false);
    assert_eq!(core.step(t0 + Duration::from_millis(300)), Decision::Idle);
    Ok(())
}

#[test]
fn actions_are_clamped_to_manifest_bounds() -> Result<()> {
    // Bounds of ±1 with a gain of 1: the probe (mean ± std = ±1) stays inside them, and
    // larger observations leave them.
    let mut core = enabled_core(&LinearPolicy::default())?;
    let t0 = Instant::now();

    core.observe(vec![5.0, -0.5, 0.0], t0);
    let decision = core.step(t0);

    assert_eq!(
        decision,
        Decision::Act {
            action: vec![1.0, -0.5],
            clamped: true
        }
    );
    core.observe(vec![-7.0, 3.0, 0.0], t0);
    assert_eq!(core.step(t0).action(), Some(&[-1.0, 1.0][..]));
    Ok(())
}

#[test]
fn safe_action_outside_bounds_is_rejected() -> Result<()> {
    let (_, loaded) = load(&LinearPolicy::default(), "v1")?;
    let result = PolicyCore::new(
        Box::new(loaded),
        CoreConfig {
            safe_action: vec![0.0, 2.0],
            ..config()
        },
    );
    let error = result.err().context("expected an error")?;
    assert!(error.contains("safe_action[1] = 2 is outside"), "{error}");
    Ok(())
}

#[test]
fn swap_keeps_running_set_when_validation_fails() -> Result<()> {
    let runtime = runtime()?;
    let (registry, loaded) = load(&LinearPolicy::default(), "v1")?;
    let mut core = PolicyCore::new(Box::new(loaded), config()).map_err(anyhow::Error::msg)?;
    core.set_service_enabled(true);

    // v2: outputs outside its bounds on the probe observations (gain 10, bounds ±1).
    let source = temp_dir("swap-v2");
    LinearPolicy {
        gain: 10.0,
        ..LinearPolicy::default()
    }
    .write_set(&source, "v2")?;
    registry.install_from_dir("v2", &source)?;
    // v3: a graph whose output name differs from the manifest's.
    let source = temp_dir("swap-v3");
    let v3 = LinearPolicy::default();
    let mut manifest = v3.write_set(&source, "v3")?;
    manifest.outputs[0].name = "act".into();
    manifest.networks.policy.outputs[0].name = "act".into();
    std::fs::write(source.join("manifest.json"), manifest.to_json())?;
    registry.install_from_dir("v3", &source)?;
    // v4: a valid set with another gain.
    let v4 = LinearPolicy {
        gain: 0.5,
        ..LinearPolicy::default()
    };
    let source = temp_dir("swap-v4");
    v4.write_set(&source, "v4")?;
    registry.install_from_dir("v4", &source)?;

    let load_version = |version: &str| -> Result<OnnxPolicy, RunnerError> {
        let set = registry.load(version)?;
        OnnxPolicy::load(&runtime, &set, &Expectation::default())
    };
    let error = load_version("v2").unwrap_err().to_string();
    assert!(error.contains("outside the action bounds"), "{error}");
    let error = load_version("v3").unwrap_err().to_string();
    assert!(error.contains("act"), "{error}");
    assert_eq!(core.policy().version(), "v1");

    let t0 = Instant::now();
    core.observe(vec![0.5, 0.5, 0.0], t0);
    assert_eq!(core.step(t0).action(), Some(&[0.5, 0.5][..]));

    let old = core
        .replace_policy(Box::new(load_version("v4")?))
        .map_err(anyhow::Error::msg)?;
    assert_eq!(old.version(), "v1");
    assert_eq!(core.policy().version(), "v4");
    assert_eq!(core.step(t0).action(), Some(&[0.25, 0.25][..]));
    Ok(())
}

#[test]
fn normalisation_outside_graph_matches_in_graph() -> Result<()> {
    let base = LinearPolicy {
        mean: vec![0.2, -0.1, 0.0],
        std: vec![2.0, 0.5, 1.0],
        tanh: true,
        ..LinearPolicy::default()
    };
    let observation = vec![0.7, 0.3, 9.0];
    let mut actions = Vec::new();
    for in_graph in [false, true] {
        let policy = LinearPolicy {
            in_graph,
            ..base.clone()
        };
        let (_, mut loaded) = load(&policy, "v1")?;
        actions.push(loaded.act(&observation).map_err(anyhow::Error::msg)?);
    }
    let expected = base.expected(&observation);
    for action in &actions {
        for (a, e) in action.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-6, "{action:?} vs {expected:?}");
        }
    }
    Ok(())
}

#[test]
fn robot_mismatch_is_named_on_load() -> Result<()> {
    let registry = Registry::open(temp_dir("runner-mismatch"), 5)?;
    let source = temp_dir("runner-mismatch-source");
    LinearPolicy::default().write_set(&source, "v1")?;
    let set = registry.install_from_dir("v1", &source)?;
    let expected = Expectation {
        observation_dim: Some((4, "the joint_names and joint_fields settings".into())),
        ..Expectation::default()
    };

    let error = OnnxPolicy::load(&runtime()?, &set, &expected)
        .unwrap_err()
        .to_string();

    assert!(
        error.contains("observation_dim is 3, expected 4"),
        "{error}"
    );
    Ok(())
}

#[test]
fn messages_map_to_observations_or_rejections() {
    let config = RunnerConfig {
        observation_type: ObservationType::JointState,
        joint_names: vec!["elbow".into(), "shoulder".into()],
        joint_fields: vec![JointField::Position, JointField::Velocity],
        ..RunnerConfig::default()
    };
    let mapping = ObservationMapping::new(&config, 4);
    let state = JointState {
        header: Header::default(),
        name: vec!["shoulder".into(), "elbow".into(), "wrist".into()],
        position: vec![1.0, 2.0, 3.0],
        velocity: vec![-1.0, -2.0, -3.0],
        effort: vec![],
    };

    assert_eq!(
        mapping.from_joint_state(&state),
        Ok(vec![2.0, 1.0, -2.0, -1.0])
    );
    let missing = JointState {
        name: vec!["shoulder".into()],
        position: vec![1.0],
        velocity: vec![1.0],
        ..JointState::default()
    };
    assert!(
        mapping
            .from_joint_state(&missing)
            .unwrap_err()
            .contains("\"elbow\"")
    );
    let short = JointState {
        velocity: vec![0.0],
        ..state
    };
    assert!(
        mapping
            .from_joint_state(&short)
            .unwrap_err()
            .contains("velocity has 1 values")
    );

    let array_mapping = ObservationMapping::new(&RunnerConfig::default(), 3);
    let array = Float32MultiArray {
        data: vec![1.0, 2.0],
        ..Float32MultiArray::default()
    };
    assert!(
        array_mapping
            .from_array(&array)
            .unwrap_err()
            .contains("has 2 values")
    );
    assert_eq!(
        config.observation_names(),
        Some(vec![
            "elbow.position".to_owned(),
            "shoulder.position".to_owned(),
            "elbow.velocity".to_owned(),
            "shoulder.velocity".to_owned()
        ])
    );
}
