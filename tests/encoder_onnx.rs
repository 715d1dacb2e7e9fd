//! The exported encoder: the ONNX checker's verdict and parity between ONNX Runtime and
//! burn's embedding path, for each setting that changes the graph.

mod encoder_common;
mod onnx_common;

use anyhow::Result;
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::learn::encoder::{
    ClarifyEncoder, EmbedToken, EncoderConfig, EncoderTrainingData, OnnxEncoder,
    StateNormalization, TimeEmbedding, encoder_signature,
};
use clarify::onnx::{ModelInfo, write_model};
use clarify::select::{DatasetSegment, Embedder};
use encoder_common::{ACTION_DIM, OBSERVATION_DIM, synthetic_buffer, synthetic_dataset};
use ndarray::{Array2, Array3};
use onnx_common::{Uniform, assert_passes_onnx_checker, require_onnx_runtime_library, temp_dir};

const MAX_RELATIVE_ERROR: f64 = 1e-4;
const MAX_TIMESTEP: usize = 64;

fn small_config(embed_token: EmbedToken, time_embedding: TimeEmbedding) -> EncoderConfig {
    EncoderConfig {
        hidden_size: 16,
        layers: 2,
        heads: 2,
        z_dim: 4,
        context_length: 8,
        max_timestep: MAX_TIMESTEP,
        batch_size: 8,
        learning_rate: 1e-3,
        warmup_iterations: 1,
        embed_token,
        time_embedding,
        ..EncoderConfig::default()
    }
}

/// Builds an encoder with random normalisation statistics and trains it for two
/// iterations, so that the exported weights are not the initial ones.
fn trained_encoder(config: EncoderConfig, seed: u64) -> Result<ClarifyEncoder> {
    let dataset = synthetic_dataset(&[20, 13, 30], seed);
    let buffer = synthetic_buffer(&dataset, 12, 6, seed);
    let mut rng = Uniform::new(seed);
    let normalization = StateNormalization::new(
        rng.vector(OBSERVATION_DIM, 2.0, 6.0),
        rng.vector(OBSERVATION_DIM, 0.5, 2.0),
    )?;
    let mut encoder =
        ClarifyEncoder::new(config, OBSERVATION_DIM, ACTION_DIM, normalization, seed)?;
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };
    encoder.train(&data, 2)?;
    Ok(encoder)
}

fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?)
}

fn relative_error(actual: &[f32], expected: &[f32]) -> f64 {
    let difference: f64 = actual
        .iter()
        .zip(expected)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm = expected
        .iter()
        .map(|&b| f64::from(b).powi(2))
        .sum::<f64>()
        .sqrt();
    difference / norm
}

fn check_parity(name: &str, config: EncoderConfig, seed: u64) -> Result<()> {
    let encoder = trained_encoder(config.clone(), seed)?;
    let path = temp_dir(&format!("encoder-{name}")).join("encoder.onnx");
    write_model(&encoder.to_onnx(&ModelInfo::default())?, &path)?;
    assert_passes_onnx_checker(&path);

    let mut session = runtime()?.load_model(&path, &encoder_signature())?;
    let mut rng = Uniform::new(seed + 100);
    for (batch, steps) in [(3, 10), (1, 7)] {
        let states = Array3::from_shape_vec(
            (batch, steps, OBSERVATION_DIM),
            rng.vector(batch * steps * OBSERVATION_DIM, 0.0, 8.0),
        )?;
        let timesteps = Array2::from_shape_simple_fn((batch, steps), || {
            rng.sample(0.0, MAX_TIMESTEP as f32).floor() as i64
        });

        let expected = encoder.embed(states.view(), timesteps.view())?;
        let outputs = session.run_mixed(&[
            states.view().into_dyn().into(),
            timesteps.view().into_dyn().into(),
        ])?;
        let actual = &outputs[0];

        let case = format!("{name}, batch {batch}, H {steps}");
        assert_eq!(actual.shape(), [batch, config.z_dim], "{case}");
        assert!(actual.iter().all(|v| v.is_finite()), "{case}: non-finite");
        assert!(actual.iter().all(|&v| v != 0.0), "{case}: unwritten zero");
        let actual: Vec<f32> = actual.iter().copied().collect();
        let expected: Vec<f32> = expected.iter().copied().collect();
        let relative = relative_error(&actual, &expected);
        assert!(relative <= MAX_RELATIVE_ERROR, "{case}: {relative}");
    }
    Ok(())
}

#[test]
fn full_segment_with_time_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let config = small_config(EmbedToken::FullSegment, TimeEmbedding::True);
    check_parity("full-time", config, 1)
}

#[test]
fn index0_with_time_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let config = small_config(EmbedToken::OfficialIndex0, TimeEmbedding::True);
    check_parity("index0-time", config, 2)
}

#[test]
fn full_segment_without_time_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let config = small_config(EmbedToken::FullSegment, TimeEmbedding::None);
    check_parity("full-none", config, 3)
}

#[test]
fn index0_without_time_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let config = small_config(EmbedToken::OfficialIndex0, TimeEmbedding::None);
    check_parity("index0-none", config, 4)
}

#[test]
fn raw_states_without_normalisation_match_burn() -> Result<()> {
    require_onnx_runtime_library();
    let config = EncoderConfig {
        normalize_preference_states: false,
        ..small_config(EmbedToken::FullSegment, TimeEmbedding::True)
    };
    check_parity("raw-states", config, 5)
}

#[test]
fn onnx_encoder_embeds_dataset_segments() -> Result<()> {
    require_onnx_runtime_library();
    let config = small_config(EmbedToken::FullSegment, TimeEmbedding::True);
    let encoder = trained_encoder(config.clone(), 6)?;
    let path = temp_dir("encoder-embedder").join("encoder.onnx");
    write_model(&encoder.to_onnx(&ModelInfo::default())?, &path)?;

    let dataset = synthetic_dataset(&[20, 13, 30], 6);
    let runtime = runtime()?;
    let mut embedder = OnnxEncoder::load(&runtime, &path, &dataset, &config, 0)?;
    let segments = [
        DatasetSegment {
            episode: 2,
            start: 17,
            length: 6,
        },
        DatasetSegment {
            episode: 0,
            start: 0,
            length: 9,
        },
        DatasetSegment {
            episode: 1,
            start: 7,
            length: 6,
        },
    ];
    let embeddings = embedder.embed(&segments)?;
    assert_eq!(embeddings.len(), segments.len());

    for (segment, embedding) in segments.iter().zip(&embeddings) {
        let start = dataset.episodes()[segment.episode].start + segment.start;
        let states = dataset
            .observations()
            .slice_axis(
                ndarray::Axis(0),
                ndarray::Slice::from(start..start + segment.length),
            )
            .to_owned()
            .insert_axis(ndarray::Axis(0));
        let timesteps = Array2::from_shape_fn((1, segment.length), |(_, step)| {
            (segment.start + step) as i64
        });
        let expected = encoder.embed(states.view(), timesteps.view())?;
        let expected: Vec<f32> = expected.iter().copied().collect();
        let relative = relative_error(embedding, &expected);
        assert!(relative <= MAX_RELATIVE_ERROR, "{segment}: {relative}");
    }

    let past_end = DatasetSegment {
        episode: 1,
        start: 10,
        length: 6,
    };
    let error = embedder.embed(&[past_end]).unwrap_err().to_string();
    assert!(error.contains("segment"), "{error}");
    Ok(())
}
