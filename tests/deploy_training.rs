//! Retraining through the real `clarify train` child. A request on a missing store is
//! rejected with its path. A failing child is reported as STATE_FAILED with its error, its
//! run is closed as failed in the store, and the registry pointer stays. Small runs on a
//! fixture store are relayed as TrainingStatus, validated, activated and announced with
//! ModelUpdate, the second one started by committed answers. A run killed by stopping the
//! manager is reported and leaves the registry as it was.
//!
//! Run through `.ci/netns-run`: the manager publishes on DDS.

mod train_support;
#[path = "transport_netns.rs"]
mod transport_netns;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::Answer;
use clarify::deploy::validate::{HeldOutSource, check_candidate};
use clarify::deploy::{DeployConfig, ModelManager, TrainingState};
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::msg::{ModelUpdate, TrainingStatus};
use clarify::registry::{Expectation, Registry};
use clarify::store::{ModelStatus, NewAnswer, NewQuery, RunStatus, SegmentRef, Store};
use clarify::train;
use clarify::transport::dds::DdsNode;
use clarify::transport::{NodeConfig, QosConfig, Subscribe, Transport};
use train_support::{SEGMENT, make_store, synthetic_dataset, tiny_settings, write_tiny_settings};

const DOMAIN: u16 = 48;
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn node(name: &str) -> Result<DdsNode> {
    Ok(DdsNode::new(NodeConfig {
        name: name.into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?)
}

/// Collects the statuses of run `run_id` until it succeeds or fails.
fn wait_for_run(
    statuses: &impl Subscribe<TrainingStatus>,
    run_id: i64,
) -> Result<Vec<TrainingStatus>> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(status) = statuses.recv_timeout(Duration::from_millis(100))?
            && status.run_id == run_id
        {
            let done = matches!(
                status.state,
                TrainingStatus::STATE_SUCCEEDED | TrainingStatus::STATE_FAILED
            );
            seen.push(status);
            if done {
                return Ok(seen);
            }
        }
    }
    bail!("run {run_id} did not finish within {RUN_TIMEOUT:?}; statuses: {seen:?}")
}

fn wait_for_update(updates: &impl Subscribe<ModelUpdate>, version: &str) -> Result<ModelUpdate> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(update) = updates.recv_timeout(Duration::from_millis(100))?
            && update.version == version
        {
            return Ok(update);
        }
    }
    bail!("no ModelUpdate for {version}")
}

/// `clarify train` arguments of a tiny run; without `--version` the child names the set
/// after the clock.
/// Returns the status of `version` in the store's `models` table, `None` without a row.
fn model_status(store: &Path, version: &str) -> Result<Option<ModelStatus>> {
    let models = Store::open(store)?.models()?;
    Ok(models
        .into_iter()
        .find(|model| model.version == version)
        .map(|model| model.status))
}

fn tiny_args(folder: &Path) -> Result<Vec<String>> {
    let settings = write_tiny_settings(folder, 50)?;
    Ok([
        "--settings",
        settings.to_str().context("path")?,
        "--min-clear-answers",
        "5",
        "--replay-round",
        "10",
        "--progress-interval",
        "25",
    ]
    .map(str::to_owned)
    .to_vec())
}

#[test]
fn training_runs_are_relayed_validated_and_deployed() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    make_store(&store, &synthetic_dataset(6, 40, 5, 2, 1), 30, 2)?;

    let mut operator = node("operator")?;
    let statuses = operator.create_subscription::<TrainingStatus>(
        "training_status",
        &QosConfig {
            depth: 200,
            ..QosConfig::latched(1)
        },
    )?;
    let updates =
        operator.create_subscription::<ModelUpdate>("model_update", &QosConfig::latched(1))?;

    // A missing store: the request is rejected with the path, and no store is created.
    let mut manager_node = node("clarify_missing")?;
    let missing = folder.path().join("missing.sqlite");
    let mut config = DeployConfig::new(&models, &missing, env!("CARGO_BIN_EXE_clarify"));
    config.train_args = tiny_args(folder.path())?;
    let manager = ModelManager::start(&mut manager_node, config)?;
    let error = manager.trigger("test").unwrap_err();
    assert!(error.contains("missing.sqlite"), "{error}");
    assert!(error.contains("not found"), "{error}");
    assert!(!missing.exists());
    assert_eq!(manager.snapshot().training, TrainingState::Idle);
    manager.stop()?;
    drop(manager_node);

    // A child that fails: its error is relayed, its run is closed as failed in the store,
    // and nothing is activated.
    let mut manager_node = node("clarify_failing")?;
    let mut config = DeployConfig::new(&models, &store, env!("CARGO_BIN_EXE_clarify"));
    config.train_args = vec!["--policy-steps".to_owned(), "not-a-number".to_owned()];
    let manager = ModelManager::start(&mut manager_node, config)?;
    let run_id = manager.trigger("test").map_err(anyhow::Error::msg)?;
    let seen = wait_for_run(&statuses, run_id)?;
    let last = seen.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_FAILED, "{seen:?}");
    assert!(last.message.contains("clarify train failed"), "{last:?}");
    assert!(last.message.contains("not-a-number"), "{last:?}");
    assert!(
        matches!(manager.snapshot().training, TrainingState::Failed { .. }),
        "{:?}",
        manager.snapshot()
    );
    assert_eq!(Registry::open(&models, 5)?.current()?, None);
    let failed_run = Store::open(&store)?.training_run(run_id)?;
    assert_eq!(failed_run.status, RunStatus::Failed);
    assert!(failed_run.finished_at_unix_secs.is_some());
    manager.stop()?;
    drop(manager_node);

    // A child that outlives the time limit is killed, and its run fails with the reason.
    let hanging = folder.path().join("hanging-trainer.sh");
    fs::write(&hanging, "#!/bin/sh\nexec sleep 600\n")?;
    fs::set_permissions(&hanging, fs::Permissions::from_mode(0o755))?;
    let mut manager_node = node("clarify_hanging")?;
    let mut config = DeployConfig::new(&models, &store, &hanging);
    config.time_limit_secs = 1.0;
    let manager = ModelManager::start(&mut manager_node, config)?;
    let started = Instant::now();
    let run_id = manager.trigger("test").map_err(anyhow::Error::msg)?;
    let seen = wait_for_run(&statuses, run_id)?;
    let last = seen.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_FAILED, "{seen:?}");
    assert!(last.message.contains("time_limit_secs"), "{last:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        Store::open(&store)?.training_run(run_id)?.status,
        RunStatus::Failed
    );
    assert_eq!(Registry::open(&models, 5)?.current()?, None);
    manager.stop()?;
    drop(manager_node);

    // A store without answers: the request is rejected with the reason.
    let empty = folder.path().join("empty.sqlite");
    make_store(&empty, &synthetic_dataset(6, 40, 5, 2, 1), 0, 2)?;
    let mut manager_node = node("clarify_empty")?;
    let config = DeployConfig::new(&models, &empty, env!("CARGO_BIN_EXE_clarify"));
    let manager = ModelManager::start(&mut manager_node, config)?;
    let error = manager.trigger("test").unwrap_err();
    assert!(error.contains("contains no answers"), "{error}");
    assert_eq!(manager.snapshot().training, TrainingState::Idle);
    manager.stop()?;
    drop(manager_node);

    // A small run on the fixture store is relayed stage by stage and deployed.
    let mut manager_node = node("clarify")?;
    let mut config = DeployConfig::new(&models, &store, env!("CARGO_BIN_EXE_clarify"));
    config.train_args = tiny_args(folder.path())?;
    config.retrain_after_answers = 2;
    let started = Instant::now();
    let manager = ModelManager::start(&mut manager_node, config)?;
    let run_id = manager.trigger("test").map_err(anyhow::Error::msg)?;
    let seen = wait_for_run(&statuses, run_id)?;
    let last = seen.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_SUCCEEDED, "{seen:?}");
    // 30 answers, of which 4 are skips (see train_support::make_store).
    assert_eq!(last.answers_used, 26, "{last:?}");
    let stages: Vec<&str> = seen.iter().map(|s| s.stage.as_str()).collect();
    for stage in ["encoder", "reward", "policy", "validate"] {
        assert!(stages.contains(&stage), "no {stage} report: {stages:?}");
    }
    assert!(
        seen.iter()
            .all(|s| (0.0..=1.0).contains(&s.stage_progress) && s.elapsed_sec >= 0.0),
        "{seen:?}"
    );
    let TrainingState::Succeeded { version: first, .. } = manager.snapshot().training else {
        bail!("no succeeded run: {:?}", manager.snapshot());
    };
    assert!(
        last.message.contains(&format!("{first} is active")),
        "{last:?}"
    );
    let update = wait_for_update(&updates, &first)?;
    assert_eq!(update.reason, ModelUpdate::REASON_TRAINED);
    assert_eq!(update.previous_version, "");
    assert_eq!(update.answers_used, 26);
    assert!((0.0..=1.0).contains(&update.reward_accuracy), "{update:?}");
    let registry = Registry::open(&models, 5)?;
    assert_eq!(registry.current()?.map(|p| p.version), Some(first.clone()));
    let first_run = Store::open(&store)?.training_run(run_id)?;
    assert_eq!(first_run.status, RunStatus::Succeeded);
    assert_eq!(first_run.model_version.as_deref(), Some(first.as_str()));
    let first_model = model_status(&store, &first)?;
    assert_eq!(first_model, Some(ModelStatus::Active));

    // Two committed answers start the next run. Its set is compared with the active one
    // and, trained on the same answers with the same seed, passes.
    manager.answer_committed();
    assert_eq!(manager.snapshot().answers_since_training, 1);
    manager.answer_committed();
    let TrainingState::Running { run_id, .. } = manager.snapshot().training else {
        bail!("no run after two answers: {:?}", manager.snapshot());
    };
    assert_eq!(manager.snapshot().answers_since_training, 0);
    let seen = wait_for_run(&statuses, run_id)?;
    let last = seen.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_SUCCEEDED, "{seen:?}");
    let TrainingState::Succeeded {
        version: second, ..
    } = manager.snapshot().training
    else {
        bail!("no succeeded run: {:?}", manager.snapshot());
    };
    assert_ne!(second, first);
    // The active set's accuracy was measured for the comparison.
    assert!(
        !last.message.ends_with("previous set not measured"),
        "{last:?}"
    );
    let update = wait_for_update(&updates, &second)?;
    assert_eq!(update.previous_version, first);
    assert_eq!(registry.current()?.map(|p| p.version), Some(second));
    manager.stop()?;
    eprintln!("two runs took {:.1} s", started.elapsed().as_secs_f64());
    drop(manager_node);

    // A long run killed by stopping the manager is reported and changes nothing.
    let versions_before = registry.versions()?;
    let pointer_before = registry.current()?;
    let mut manager_node = node("clarify_stopped")?;
    let mut config = DeployConfig::new(&models, &store, env!("CARGO_BIN_EXE_clarify"));
    config.train_args = tiny_args(folder.path())?;
    config
        .train_args
        .extend(["--policy-steps", "1000000"].map(str::to_owned));
    let manager = ModelManager::start(&mut manager_node, config)?;
    let run_id = manager.trigger("test").map_err(anyhow::Error::msg)?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = statuses.recv_timeout(Duration::from_millis(100))?
            && status.run_id == run_id
            && status.stage == "policy"
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("run {run_id} never reached the policy stage");
        }
    }
    manager.stop()?;
    let seen = wait_for_run(&statuses, run_id)?;
    let last = seen.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_FAILED, "{seen:?}");
    assert!(last.message.contains("killed"), "{last:?}");
    assert_eq!(registry.current()?, pointer_before);
    assert_eq!(registry.versions()?, versions_before);
    Ok(())
}

#[test]
fn held_out_answers_follow_training() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store_path = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    make_store(&store_path, &synthetic_dataset(6, 40, 5, 2, 1), 30, 2)?;
    let mut settings = tiny_settings(50);
    settings.version = Some("h1".to_owned());
    train::run_job(&store_path, &models, &settings, &mut |_| {})?;
    let set = Registry::open(&models, 5)?.load("h1")?;
    let runtime = Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?;
    let expected = Expectation::default();

    // No answers after training: the 20 clear answers of the 30, which it trained on.
    let validation = check_candidate(&runtime, &set, Some(&set), &expected, &store_path, 0.0)
        .map_err(anyhow::Error::msg)?;
    assert_eq!(validation.source, HeldOutSource::MostRecent);
    assert_eq!(validation.held_out, 20);
    assert!(validation.reward_accuracy.is_finite(), "{validation:?}");
    assert_eq!(validation.reward_accuracy, validation.active_accuracy);

    // Fifteen clear answers given later are held out from the set's training.
    let mut store = Store::open(&store_path)?;
    let dataset = store.datasets()?.remove(0);
    let episodes = store.episodes(dataset.id)?;
    for index in 0..15 {
        let segment = |episode: usize, start: usize| SegmentRef {
            episode: episodes[episode].id,
            start,
            length: SEGMENT,
        };
        let query = store.insert_query(&NewQuery {
            left: segment(index % 6, index % 20),
            right: segment((index + 3) % 6, 5),
            selector: "random".to_owned(),
            encoder_version: None,
            created_at_unix_secs: 100.0 + index as f64,
            expires_at_unix_secs: None,
        })?;
        store.record_answer(&NewAnswer {
            query,
            operator: "test".to_owned(),
            answer: if index % 2 == 0 {
                Answer::Left
            } else {
                Answer::Right
            },
            answered_at_unix_secs: 200.0 + index as f64,
            response_secs: 1.0,
        })?;
    }
    drop(store);
    let validation = check_candidate(&runtime, &set, Some(&set), &expected, &store_path, 0.0)
        .map_err(anyhow::Error::msg)?;
    assert_eq!(validation.source, HeldOutSource::AfterTraining);
    assert_eq!(validation.held_out, 15);

    // A set trained on the same segments with every clear answer flipped predicts the
    // stored answers far worse than h1, so it is rejected against h1.
    let flipped = folder.path().join("flipped.sqlite");
    make_store(&flipped, &synthetic_dataset(6, 40, 5, 2, 1), 30, 2)?;
    let connection = rusqlite::Connection::open(&flipped)?;
    connection.execute(
        "UPDATE answers SET answer = CASE answer WHEN 'left' THEN 'right' \
         WHEN 'right' THEN 'left' ELSE answer END",
        [],
    )?;
    drop(connection);
    settings.version = Some("flipped".to_owned());
    train::run_job(&flipped, &models, &settings, &mut |_| {})?;
    let worse = Registry::open(&models, 5)?.load("flipped")?;
    let error =
        check_candidate(&runtime, &worse, Some(&set), &expected, &store_path, 0.05).unwrap_err();
    assert!(error.contains("below the active set h1"), "{error}");

    // A store without the set's dataset cannot check it.
    let other = folder.path().join("other.sqlite");
    make_store(&other, &synthetic_dataset(6, 40, 5, 2, 1), 30, 3)?;
    let error = check_candidate(&runtime, &set, None, &expected, &other, 0.0).unwrap_err();
    assert!(error.contains("has no dataset with SHA-256"), "{error}");
    Ok(())
}
