//! Training the encoder on a tiny synthetic dataset: the reconstruction loss falls, every
//! loss is finite, a seed fixes the result, and invalid inputs are rejected.

mod encoder_common;

use anyhow::Result;
use clarify::Answer;
use clarify::learn::encoder::{
    AmbiguityLossMode, ClarifyEncoder, EncoderConfig, EncoderError, EncoderPreset,
    EncoderTrainingData, StateNormalization,
};
use clarify::select::{DatasetSegment, LabelledPair, SegmentPair};
use encoder_common::{ACTION_DIM, OBSERVATION_DIM, synthetic_buffer, synthetic_dataset};
use ndarray::{Array2, Array3};

fn tiny_config() -> EncoderConfig {
    EncoderConfig {
        hidden_size: 16,
        layers: 1,
        heads: 2,
        z_dim: 4,
        context_length: 10,
        max_timestep: 64,
        batch_size: 16,
        learning_rate: 3e-3,
        warmup_iterations: 1,
        quadrilateral_partners: 8,
        ..EncoderConfig::default()
    }
}

fn new_encoder(config: EncoderConfig, seed: u64) -> Result<(ClarifyEncoder, clarify::Dataset)> {
    // Episode lengths below, at and above the context length, so windows get padding.
    let dataset = synthetic_dataset(&[7, 10, 25, 40], 11);
    let normalization = StateNormalization::from_dataset(&dataset)?;
    let encoder = ClarifyEncoder::new(config, OBSERVATION_DIM, ACTION_DIM, normalization, seed)?;
    Ok((encoder, dataset))
}

#[test]
fn training_reduces_reconstruction_loss() -> Result<()> {
    let (mut encoder, dataset) = new_encoder(tiny_config(), 3)?;
    let buffer = synthetic_buffer(&dataset, 16, 5, 4);
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };
    let first = encoder.train(&data, 5)?;
    encoder.train(&data, 30)?;
    let last = encoder.train(&data, 5)?;

    for report in [&first, &last] {
        for loss in [
            report.reconstruction_loss,
            report.norm_loss,
            report.ambiguity_loss,
            report.quadrilateral_loss,
        ] {
            assert!(loss.is_finite(), "{report:?}");
        }
    }
    assert!(
        last.reconstruction_loss < 0.8 * first.reconstruction_loss,
        "first {}, last {}",
        first.reconstruction_loss,
        last.reconstruction_loss
    );
    assert_eq!(last.total_iterations, 40);
    assert_eq!(last.clear_pairs, 8);
    assert_eq!(last.ambiguous_pairs, 4);
    assert_eq!(last.skipped_pairs, 4);
    Ok(())
}

/// Trains for a few iterations and returns the report's losses and an embedding.
fn train_and_embed(config: EncoderConfig, seed: u64) -> Result<(Vec<f64>, Vec<f32>)> {
    let (mut encoder, dataset) = new_encoder(config, seed)?;
    let buffer = synthetic_buffer(&dataset, 16, 5, 4);
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };
    let report = encoder.train(&data, 4)?;
    let states = Array3::from_shape_fn((2, 5, OBSERVATION_DIM), |(b, t, f)| {
        3.0 + (b + t + f) as f32 * 0.1
    });
    let timesteps = Array2::from_shape_fn((2, 5), |(b, t)| (b * 3 + t) as i64);
    let z = encoder.embed(states.view(), timesteps.view())?;
    let losses = vec![
        report.reconstruction_loss,
        report.norm_loss,
        report.ambiguity_loss,
        report.quadrilateral_loss,
    ];
    Ok((losses, z.iter().copied().collect()))
}

#[test]
fn training_is_reproducible_for_a_seed() -> Result<()> {
    let config = EncoderConfig {
        ambiguity_loss_mode: AmbiguityLossMode::Official,
        ..tiny_config()
    };
    let first = train_and_embed(config.clone(), 9)?;
    let second = train_and_embed(config.clone(), 9)?;
    let other_seed = train_and_embed(config, 10)?;
    assert_eq!(first, second);
    assert_ne!(first.1, other_seed.1);
    Ok(())
}

#[test]
fn buffer_without_usable_answers_trains_norm_only() -> Result<()> {
    let (mut encoder, dataset) = new_encoder(tiny_config(), 5)?;
    let mut buffer = synthetic_buffer(&dataset, 4, 5, 4);
    for entry in &mut buffer {
        entry.answer = Answer::Skip;
    }
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };
    let report = encoder.train(&data, 2)?;
    assert!(report.reconstruction_loss.is_finite());
    assert!(report.norm_loss.is_finite());
    assert!(report.ambiguity_loss.is_nan());
    assert_eq!(report.skipped_pairs, 4);
    Ok(())
}

#[test]
fn episode_longer_than_time_table_is_rejected() -> Result<()> {
    let config = EncoderConfig {
        max_timestep: 30,
        ..tiny_config()
    };
    let (mut encoder, dataset) = new_encoder(config, 1)?;
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &[],
    };
    let error = encoder.train(&data, 1).unwrap_err();
    assert!(
        matches!(
            error,
            EncoderError::EpisodeTooLong {
                episode_len: 40,
                max_timestep: 30
            }
        ),
        "{error}"
    );
    Ok(())
}

#[test]
fn buffer_with_mixed_lengths_is_rejected() -> Result<()> {
    let (mut encoder, dataset) = new_encoder(tiny_config(), 1)?;
    let segment = |start, length| DatasetSegment {
        episode: 3,
        start,
        length,
    };
    let buffer = [
        LabelledPair {
            pair: SegmentPair {
                left: segment(0, 5),
                right: segment(10, 5),
            },
            answer: Answer::Left,
        },
        LabelledPair {
            pair: SegmentPair {
                left: segment(0, 6),
                right: segment(10, 6),
            },
            answer: Answer::CantTell,
        },
    ];
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };
    let error = encoder.train(&data, 1).unwrap_err();
    assert!(
        matches!(error, EncoderError::SegmentLength { index: 1, .. }),
        "{error}"
    );
    Ok(())
}

#[test]
fn embed_rejects_timesteps_outside_table() -> Result<()> {
    let (encoder, _) = new_encoder(tiny_config(), 1)?;
    let states = Array3::zeros((1, 3, OBSERVATION_DIM));
    let timesteps = Array2::from_shape_vec((1, 3), vec![62, 63, 64])?;
    let error = encoder
        .embed(states.view(), timesteps.view())
        .unwrap_err()
        .to_string();
    assert!(error.contains("timestep 64 is out of range"), "{error}");
    Ok(())
}

#[test]
fn presets_validate_and_differ() {
    let cpu = EncoderConfig::preset(EncoderPreset::Cpu);
    let paper = EncoderConfig::preset(EncoderPreset::Paper);
    assert!(cpu.validate().is_ok());
    assert!(paper.validate().is_ok());
    assert_eq!(cpu, EncoderConfig::default());
    assert_eq!((cpu.hidden_size, cpu.layers, cpu.heads), (64, 2, 2));
    assert_eq!((paper.hidden_size, paper.layers, paper.heads), (256, 4, 4));
    assert_eq!(paper.iterations_for_round(0), 20_000);
    assert_eq!(paper.iterations_for_round(3), 500);
    assert!((cpu.learning_rate_at(0) - 1e-6).abs() < 1e-15);
    assert!((cpu.learning_rate_at(99) - 1e-4).abs() < 1e-15);
}

#[test]
fn config_rejects_heads_that_do_not_divide_width() {
    let config = EncoderConfig {
        heads: 3,
        ..EncoderConfig::default()
    };
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("heads = 3"), "{error}");
}

#[test]
fn config_reads_partial_json() -> Result<()> {
    let config: EncoderConfig = serde_json::from_str(
        r#"{"hidden_size": 32, "embed_token": "official_index0", "time_embedding": "random"}"#,
    )?;
    assert_eq!(config.hidden_size, 32);
    assert_eq!(config.layers, 2);
    let text = serde_json::to_string(&config)?;
    assert_eq!(serde_json::from_str::<EncoderConfig>(&text)?, config);
    let unknown = serde_json::from_str::<EncoderConfig>(r#"{"hidden": 32}"#);
    assert!(unknown.is_err());
    Ok(())
}
