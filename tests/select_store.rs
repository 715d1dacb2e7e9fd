//! Query selection through ONNX Runtime and the segment store: the exported reward
//! ensemble's disagreement against burn's, and selection rounds that read the preference
//! buffer from a store in a temporary folder and write their queries back to it.

mod common;
mod onnx_common;

use std::collections::HashSet;

use anyhow::Result;
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::learn::{PreferencePairs, RewardModel, RewardModelConfig};
use clarify::onnx::{ModelInfo, write_model};
use clarify::select::{
    DatasetSegment, DisagreementScorer, OnnxRewardScorer, QuerySelector, RoundModels, SegmentPair,
    SelectConfig, StoreRoundError, select_and_store_round,
};
use clarify::store::{ImportOptions, NewAnswer, Store, import_npz};
use clarify::{Answer, Dataset};
use common::NpzFixture;
use ndarray::{Array2, Array4, Axis};
use onnx_common::{Uniform, require_onnx_runtime_library, temp_dir};

const SEGMENT_LENGTH: usize = 5;
const EPISODE_LENGTHS: [usize; 6] = [20, 20, 20, 20, 20, 20];

/// Writes a dataset of six 20-step episodes with random observations and actions and
/// rewards that grow with the first observation feature.
fn write_dataset(name: &str, seed: u64) -> Result<std::path::PathBuf> {
    let steps: usize = EPISODE_LENGTHS.iter().sum();
    let mut rng = Uniform::new(seed);
    let observations = Array2::from_shape_vec((steps, 3), rng.vector(steps * 3, -1.0, 1.0))?;
    let actions = Array2::from_shape_vec((steps, 2), rng.vector(steps * 2, -1.0, 1.0))?;
    let rewards: Vec<f32> = observations
        .axis_iter(Axis(0))
        .map(|row| 1.0 + row[0])
        .collect();
    let mut fixture = NpzFixture::valid(&EPISODE_LENGTHS, &rewards);
    fixture.set("observations", observations.clone());
    fixture.set("next_observations", observations);
    fixture.set("actions", actions);
    fixture.write(name)
}

fn cpu_runtime() -> Result<Runtime> {
    Ok(Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?)
}

fn small_reward_model(seed: u64) -> Result<RewardModel> {
    let config = RewardModelConfig {
        hidden_sizes: vec![16, 16],
        max_epochs: 3,
        batch_size: 8,
        seed,
        ..RewardModelConfig::default()
    };
    Ok(RewardModel::new(config, 3, 2)?)
}

/// Copies the steps of both segments of every pair into `[pairs, 2, H, width]`.
fn pair_arrays(dataset: &Dataset, pairs: &[SegmentPair]) -> (Array4<f32>, Array4<f32>) {
    let mut observations = Array4::zeros((pairs.len(), 2, SEGMENT_LENGTH, 3));
    let mut actions = Array4::zeros((pairs.len(), 2, SEGMENT_LENGTH, 2));
    for (index, pair) in pairs.iter().enumerate() {
        for (side, segment) in [pair.left, pair.right].into_iter().enumerate() {
            let start = dataset.episodes()[segment.episode].start + segment.start;
            let rows = (start..start + segment.length).into();
            observations
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&dataset.observations().slice_axis(Axis(0), rows));
            actions
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&dataset.actions().slice_axis(Axis(0), rows));
        }
    }
    (observations, actions)
}

/// Answers like a skip teacher with threshold 0.5 on the true returns.
fn teacher_answer(dataset: &Dataset, pair: &SegmentPair) -> Answer {
    let segment_return = |segment: DatasetSegment| -> f64 {
        let start = dataset.episodes()[segment.episode].start + segment.start;
        dataset
            .rewards()
            .slice_axis(Axis(0), (start..start + segment.length).into())
            .iter()
            .map(|&reward| f64::from(reward))
            .sum()
    };
    let (left, right) = (segment_return(pair.left), segment_return(pair.right));
    if (left - right).abs() <= 0.5 {
        Answer::CantTell
    } else if left > right {
        Answer::Left
    } else {
        Answer::Right
    }
}

/// Trains `model` on the answers to `pairs` and exports it to `path`.
fn train_and_export(
    model: &mut RewardModel,
    dataset: &Dataset,
    pairs: &[SegmentPair],
    path: &std::path::Path,
) -> Result<()> {
    let answers: Vec<Answer> = pairs
        .iter()
        .map(|pair| teacher_answer(dataset, pair))
        .collect();
    let (observations, actions) = pair_arrays(dataset, pairs);
    model.train(&PreferencePairs {
        observations: observations.view(),
        actions: actions.view(),
        answers: &answers,
    })?;
    write_model(&model.to_onnx(&ModelInfo::default())?, path)?;
    Ok(())
}

fn selector(dataset: &Dataset, queries: usize) -> Result<QuerySelector> {
    let config = SelectConfig {
        segment_length: SEGMENT_LENGTH,
        queries_per_round: queries,
        pool_factor: 4,
        ..SelectConfig::default()
    };
    Ok(QuerySelector::new(config, dataset.episodes())?)
}

#[test]
fn onnx_scorer_matches_burn_disagreement() -> Result<()> {
    require_onnx_runtime_library();
    let path = write_dataset("select-store-parity.npz", 11)?;
    let dataset = Dataset::load(&path)?;
    let selector = selector(&dataset, 30)?;
    let training = selector.select_random(1, &Default::default());
    let training_pairs: Vec<SegmentPair> = training.pairs.iter().map(|s| s.pair).collect();
    let mut model = small_reward_model(5)?;
    let model_path = temp_dir("select-store-parity").join("reward.onnx");
    train_and_export(&mut model, &dataset, &training_pairs, &model_path)?;

    let runtime = cpu_runtime()?;
    let mut scorer = OnnxRewardScorer::load(&runtime, &model_path, &dataset)?;
    let candidates = selector.select_random(2, &Default::default());
    let pairs: Vec<SegmentPair> = candidates.pairs.iter().map(|s| s.pair).collect();
    let onnx_scores = scorer.disagreement(&pairs)?;
    let (observations, actions) = pair_arrays(&dataset, &pairs);
    let burn_scores = model.disagreement(observations.view(), actions.view())?;

    assert_eq!(onnx_scores.len(), pairs.len());
    assert_eq!(burn_scores.len(), pairs.len());
    for (index, (onnx, burn)) in onnx_scores.iter().zip(&burn_scores).enumerate() {
        assert!(
            (onnx - burn).abs() <= 1e-4,
            "pair {index}: ONNX {onnx} vs burn {burn}"
        );
    }
    let max_score = onnx_scores.iter().copied().fold(0.0, f64::max);
    assert!(
        max_score > 1e-3,
        "members agree on every pair ({max_score}), so the comparison checks nothing"
    );
    Ok(())
}

#[test]
fn onnx_scorer_rejects_segment_outside_dataset() -> Result<()> {
    require_onnx_runtime_library();
    let path = write_dataset("select-store-outside.npz", 12)?;
    let dataset = Dataset::load(&path)?;
    let mut model = small_reward_model(6)?;
    let model_path = temp_dir("select-store-outside").join("reward.onnx");
    let pairs = [SegmentPair {
        left: DatasetSegment {
            episode: 0,
            start: 0,
            length: SEGMENT_LENGTH,
        },
        right: DatasetSegment {
            episode: 1,
            start: 0,
            length: SEGMENT_LENGTH,
        },
    }];
    train_and_export(&mut model, &dataset, &pairs, &model_path)?;
    let mut scorer = OnnxRewardScorer::load(&cpu_runtime()?, &model_path, &dataset)?;

    let outside = SegmentPair {
        left: pairs[0].left,
        right: DatasetSegment {
            episode: 9,
            start: 0,
            length: SEGMENT_LENGTH,
        },
    };
    let error = scorer.disagreement(&[outside]).unwrap_err().to_string();

    assert!(error.contains("invalid segment"), "{error}");
    Ok(())
}

#[test]
fn store_rounds_record_queries_and_read_answers() -> Result<()> {
    require_onnx_runtime_library();
    let path = write_dataset("select-store-rounds.npz", 13)?;
    let dataset = Dataset::load(&path)?;
    let folder = temp_dir("select-store-rounds");
    let mut store = Store::open(folder.join("store.sqlite"))?;
    let imported = import_npz(
        &mut store,
        &path,
        &ImportOptions {
            name: None,
            segment_length: SEGMENT_LENGTH,
        },
    )?;
    let dataset_id = imported.summary().dataset.id;
    let selector = selector(&dataset, 8)?;

    // Round 0: random queries, answered by the teacher through the store.
    let first = select_and_store_round(
        &mut store,
        dataset_id,
        &selector,
        21,
        RoundModels::random(),
        Some("ignored-on-random-rounds"),
        1000.0,
    )?;
    assert_eq!(first.queries.len(), 8);
    assert_eq!(first.shortfall, 0);
    assert_eq!(first.missing, 0);
    for query in &first.queries {
        assert_eq!(query.query.selector, "random");
        assert_eq!(query.query.encoder_version, None);
        assert_eq!(query.query.created_at_unix_secs, 1000.0);
        assert_eq!(store.query(query.id)?, *query);
    }
    let mut answered_pairs = Vec::new();
    for (query, selected) in first.queries.iter().zip(&first.selection.pairs) {
        let answer = teacher_answer(&dataset, &selected.pair);
        store.record_answer(&NewAnswer {
            query: query.id,
            operator: "teacher".to_owned(),
            answer,
            answered_at_unix_secs: 1001.0,
            response_secs: 1.0,
        })?;
        answered_pairs.push(selected.pair);
    }

    // Round 1: disagreement of the exported reward model, which trained on the answers.
    let mut model = small_reward_model(7)?;
    let model_path = folder.join("reward.onnx");
    train_and_export(&mut model, &dataset, &answered_pairs, &model_path)?;
    let runtime = cpu_runtime()?;
    let mut scorer = OnnxRewardScorer::load(&runtime, &model_path, &dataset)?;
    let second = select_and_store_round(
        &mut store,
        dataset_id,
        &selector,
        22,
        RoundModels::disagreement(&mut scorer),
        None,
        1002.0,
    )?;
    assert_eq!(second.queries.len(), 8);
    for query in &second.queries {
        assert_eq!(query.query.selector, "disagreement");
    }
    let first_keys: HashSet<_> = answered_pairs.iter().map(|p| p.unordered_key()).collect();
    for selected in &second.selection.pairs {
        assert!(
            !first_keys.contains(&selected.pair.unordered_key()),
            "pair {} asked again",
            selected.pair
        );
        assert!(selected.disagreement.is_some());
    }

    // The open queries of round 1 count as asked, so round 2 avoids them too.
    let third = select_and_store_round(
        &mut store,
        dataset_id,
        &selector,
        23,
        RoundModels::random(),
        None,
        1003.0,
    )?;
    let earlier: HashSet<_> = answered_pairs
        .iter()
        .chain(second.selection.pairs.iter().map(|s| &s.pair))
        .map(|pair| pair.unordered_key())
        .collect();
    for selected in &third.selection.pairs {
        assert!(
            !earlier.contains(&selected.pair.unordered_key()),
            "pair {} asked again",
            selected.pair
        );
    }
    assert_eq!(store.unanswered_queries(1003.0)?.len(), 16);
    Ok(())
}

#[test]
fn store_round_rejects_selector_of_other_dataset() -> Result<()> {
    let path = write_dataset("select-store-mismatch.npz", 14)?;
    let folder = temp_dir("select-store-mismatch");
    let mut store = Store::open(folder.join("store.sqlite"))?;
    let imported = import_npz(&mut store, &path, &ImportOptions::default())?;
    let dataset_id = imported.summary().dataset.id;

    let other_path =
        common::NpzFixture::valid(&[20, 20], &[1.0; 40]).write("select-store-other.npz")?;
    let other = Dataset::load(&other_path)?;
    let error = select_and_store_round(
        &mut store,
        dataset_id,
        &selector(&other, 2)?,
        1,
        RoundModels::random(),
        None,
        0.0,
    )
    .unwrap_err();

    assert!(
        matches!(
            error,
            StoreRoundError::EpisodeCount {
                selector_episodes: 2,
                stored_episodes: 6,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(store.unanswered_queries(0.0)?.len(), 0);
    Ok(())
}
