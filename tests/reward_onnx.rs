//! The exported reward ensemble: the ONNX checker's verdict and parity between ONNX Runtime
//! and burn's forward pass.

mod onnx_common;

use anyhow::Result;
use clarify::Answer;
use clarify::infer::{ExecutionProviderKind, InferConfig, ModelSignature, Runtime, TensorSpec};
use clarify::learn::{
    ACTIONS_INPUT, OBSERVATIONS_INPUT, PreferencePairs, REWARDS_OUTPUT, RewardModel,
    RewardModelConfig,
};
use clarify::onnx::{ModelInfo, write_model};
use ndarray::{Array3, Array4};
use onnx_common::{Uniform, assert_passes_onnx_checker, require_onnx_runtime_library, temp_dir};

const OBSERVATION_DIM: usize = 39;
const ACTION_DIM: usize = 4;
const MAX_RELATIVE_ERROR: f64 = 1e-4;

fn random_array3(rng: &mut Uniform, shape: (usize, usize, usize)) -> Array3<f32> {
    let values = rng.vector(shape.0 * shape.1 * shape.2, -2.0, 2.0);
    Array3::from_shape_vec(shape, values).expect("product of the shape")
}

/// Trains a model briefly, so that the exported weights are not the initial ones.
fn trained_model() -> Result<RewardModel> {
    let config = RewardModelConfig {
        max_epochs: 2,
        seed: 31,
        ..RewardModelConfig::default()
    };
    let mut model = RewardModel::new(config, OBSERVATION_DIM, ACTION_DIM)?;
    let mut rng = Uniform::new(32);
    let pairs = 16;
    let observations = Array4::from_shape_vec(
        (pairs, 2, 5, OBSERVATION_DIM),
        rng.vector(pairs * 2 * 5 * OBSERVATION_DIM, -1.0, 1.0),
    )?;
    let actions = Array4::from_shape_vec(
        (pairs, 2, 5, ACTION_DIM),
        rng.vector(pairs * 2 * 5 * ACTION_DIM, -1.0, 1.0),
    )?;
    let answers: Vec<Answer> = (0..pairs)
        .map(|index| {
            if index % 2 == 0 {
                Answer::Left
            } else {
                Answer::Right
            }
        })
        .collect();
    model.train(&PreferencePairs {
        observations: observations.view(),
        actions: actions.view(),
        answers: &answers,
    })?;
    Ok(model)
}

#[test]
fn reward_ensemble_export_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let model = trained_model()?;
    let path = temp_dir("reward-ensemble").join("reward.onnx");
    write_model(&model.to_onnx(&ModelInfo::default())?, &path)?;
    assert_passes_onnx_checker(&path);

    let runtime = Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?;
    let signature = ModelSignature {
        inputs: vec![
            TensorSpec::new(OBSERVATIONS_INPUT, 3),
            TensorSpec::new(ACTIONS_INPUT, 3),
        ],
        outputs: vec![TensorSpec::new(REWARDS_OUTPUT, 3)],
    };
    let mut session = runtime.load_model(&path, &signature)?;
    let mut rng = Uniform::new(33);

    for (batch, steps) in [(3, 50), (1, 7)] {
        let observations = random_array3(&mut rng, (batch, steps, OBSERVATION_DIM));
        let actions = random_array3(&mut rng, (batch, steps, ACTION_DIM));

        let expected = model.predict_rewards(observations.view(), actions.view())?;
        let outputs = session.run(&[observations.view().into_dyn(), actions.view().into_dyn()])?;

        let actual = &outputs[0];
        assert_eq!(
            actual.shape(),
            [3, batch, steps],
            "batch {batch}, T {steps}"
        );
        assert!(
            actual.iter().all(|value| value.is_finite()),
            "batch {batch}, T {steps}"
        );
        let difference: f64 = actual
            .iter()
            .zip(expected.iter())
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = expected
            .iter()
            .map(|&b| f64::from(b).powi(2))
            .sum::<f64>()
            .sqrt();
        let relative = difference / norm;
        assert!(
            relative <= MAX_RELATIVE_ERROR,
            "batch {batch}, T {steps}: {relative}"
        );
    }
    Ok(())
}
