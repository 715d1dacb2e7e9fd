//! The dataset fingerprint on a small hand-made dataset whose numbers are worked out by
//! hand below.
//!
//! Three episodes with segment length H = 2:
//!
//! | episode | rewards   | return | segments (start: return) | success flags  |
//! |---------|-----------|--------|--------------------------|----------------|
//! | 0       | 0, 0, 8   | 8      | 0: 0, 1: 8               | step 1 only    |
//! | 1       | 1, 2      | 3      | 3: 3                     | last step      |
//! | 2       | 5         | 5      | none (shorter than H)    | none           |
//!
//! N = 6 steps, reward sum 16, so r̄ = 16 / 6 and the skip thresholds are
//! T(0.5) = 0.5 · 2 · r̄ ≈ 2.67 and T(0.7) = 0.7 · 2 · r̄ ≈ 3.73. The segment returns 0, 8
//! and 3 give the return differences 8 (segments 0 and 1), 3 (0 and 2) and 5 (1 and 2):
//! only the pair of segments 0 and 2 is "can't tell", and only for ε = 0.7.

mod common;

use clarify::fingerprint::{self, FingerprintConfig, FingerprintError};
use clarify::{Answer, Dataset};
use common::NpzFixture;
use ndarray::array;

fn hand_made_fixture() -> NpzFixture {
    let mut fixture = NpzFixture::valid(&[3, 2, 1], &[0.0, 0.0, 8.0, 1.0, 2.0, 5.0]);
    fixture.set("success", array![false, true, false, false, true, false]);
    fixture
}

fn config(pairs: usize) -> FingerprintConfig {
    FingerprintConfig {
        segment_length: 2,
        pairs,
        pair_seed: 3,
    }
}

/// Returns the hand-derived answers for ε = 0.5 and ε = 0.7 to the pair (a, b).
fn expected_answers(a: usize, b: usize) -> [Answer; 2] {
    let segment_returns = [0.0, 8.0, 3.0];
    let preferred = if segment_returns[a] > segment_returns[b] {
        Answer::Left
    } else {
        Answer::Right
    };
    let is_pair_0_2 = (a, b) == (0, 2) || (a, b) == (2, 0);
    if is_pair_0_2 {
        [preferred, Answer::CantTell]
    } else {
        [preferred, preferred]
    }
}

#[test]
fn hand_made_dataset_counts_and_returns() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-hand-made.npz")?)?;

    let fingerprint = fingerprint::compute(&dataset, &config(200))?.fingerprint;

    assert_eq!(fingerprint.episodes, 3);
    assert_eq!(fingerprint.steps, 6);
    assert_eq!(fingerprint.segment_length, 2);
    assert_eq!(fingerprint.segments, 3);
    assert_eq!(fingerprint.short_episodes, 1);
    assert_eq!(fingerprint.success_rate_any, Some(2.0 / 3.0));
    assert_eq!(fingerprint.success_rate_final, Some(1.0 / 3.0));
    assert_eq!(fingerprint.mean_step_reward, 16.0 / 6.0);
    assert_eq!(fingerprint.pairs, 200);
    assert_eq!(fingerprint.pair_seed, 3);

    let returns = &fingerprint.episode_return;
    assert_eq!(returns.min, 3.0);
    assert_eq!(returns.max, 8.0);
    assert_eq!(returns.mean, 16.0 / 3.0);
    let std_by_hand = (38.0_f64 / 9.0).sqrt();
    assert!(
        (returns.std - std_by_hand).abs() < 1e-12,
        "std {}",
        returns.std
    );
    Ok(())
}

#[test]
fn hand_made_dataset_histogram() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-histogram.npz")?)?;

    let histogram = fingerprint::compute(&dataset, &config(10))?
        .fingerprint
        .episode_return
        .histogram;

    // Returns 3, 5 and 8 over [3, 8]: bins floor(0), floor(4) and floor(10) clamped to 9.
    assert_eq!(histogram.counts, [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    assert_eq!(histogram.edges.len(), 11);
    assert_eq!(histogram.edges[0], 3.0);
    assert_eq!(histogram.edges[2], 4.0);
    assert_eq!(histogram.edges[10], 8.0);
    assert!(histogram.edges.windows(2).all(|pair| pair[0] < pair[1]));
    Ok(())
}

#[test]
fn hand_made_dataset_pair_answers() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-pairs.npz")?)?;

    let report = fingerprint::compute(&dataset, &config(300))?;

    let segment_returns = [0.0, 8.0, 3.0];
    let mut pairs_0_2 = 0;
    assert_eq!(report.pairs.len(), 300);
    for pair in &report.pairs {
        assert_ne!(pair.a, pair.b);
        assert_eq!(pair.return_a, segment_returns[pair.a]);
        assert_eq!(pair.return_b, segment_returns[pair.b]);

        let epsilons: Vec<f64> = pair.answers.0.iter().map(|(epsilon, _)| *epsilon).collect();
        let answers: Vec<Answer> = pair.answers.0.iter().map(|(_, answer)| *answer).collect();
        assert_eq!(epsilons, [0.5, 0.7]);
        assert_eq!(answers, expected_answers(pair.a, pair.b), "pair {pair:?}");

        if answers[1] == Answer::CantTell {
            pairs_0_2 += 1;
        }
    }
    assert!(
        pairs_0_2 > 0,
        "300 pairs over 3 segments include segments 0 and 2"
    );

    let shares = &report.fingerprint.clear_share.0;
    assert_eq!(shares[0], (0.5, 1.0));
    assert_eq!(shares[1], (0.7, (300 - pairs_0_2) as f64 / 300.0));
    Ok(())
}

#[test]
fn fingerprint_json_has_sidecar_keys() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-json.npz")?)?;
    let fingerprint = fingerprint::compute(&dataset, &config(20))?.fingerprint;

    let json = serde_json::to_value(&fingerprint)?;

    let mut keys: Vec<&str> = json
        .as_object()
        .expect("fingerprint is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "clear_share",
            "episode_return",
            "episodes",
            "mean_step_reward",
            "pair_seed",
            "pairs",
            "segment_length",
            "segments",
            "short_episodes",
            "steps",
            "success_rate_any",
            "success_rate_final",
        ]
    );
    assert_eq!(json["clear_share"]["0.5"], 1.0);
    assert!(json["clear_share"]["0.7"].is_number());
    assert_eq!(json["episode_return"]["histogram"]["counts"][9], 1);
    assert_eq!(json["episode_return"]["mean"], 16.0 / 3.0);
    Ok(())
}

#[test]
fn success_rates_are_null_without_success_field() -> anyhow::Result<()> {
    let mut fixture = hand_made_fixture();
    fixture.remove("success");
    let dataset = Dataset::load(fixture.write("fingerprint-no-success.npz")?)?;

    let fingerprint = fingerprint::compute(&dataset, &config(20))?.fingerprint;
    let json = serde_json::to_value(&fingerprint)?;

    assert_eq!(fingerprint.success_rate_any, None);
    assert!(json["success_rate_any"].is_null());
    assert!(json["success_rate_final"].is_null());
    Ok(())
}

#[test]
fn same_seed_gives_same_pairs() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-determinism.npz")?)?;

    let first = fingerprint::compute(&dataset, &config(50))?;
    let second = fingerprint::compute(&dataset, &config(50))?;
    let other_seed = fingerprint::compute(
        &dataset,
        &FingerprintConfig {
            pair_seed: 4,
            ..config(50)
        },
    )?;

    assert_eq!(first, second);
    assert_ne!(first.pairs, other_seed.pairs);
    Ok(())
}

#[test]
fn too_few_segments_rejected() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-few-segments.npz")?)?;

    let error = fingerprint::compute(
        &dataset,
        &FingerprintConfig {
            segment_length: 3,
            ..config(10)
        },
    )
    .expect_err("one segment of 3 steps cannot form a pair");

    assert_eq!(
        error,
        FingerprintError::TooFewSegments {
            segments: 1,
            segment_length: 3
        }
    );
    Ok(())
}

#[test]
fn zero_pairs_rejected() -> anyhow::Result<()> {
    let dataset = Dataset::load(hand_made_fixture().write("fingerprint-zero-pairs.npz")?)?;

    let error = fingerprint::compute(&dataset, &config(0)).err();

    assert_eq!(error, Some(FingerprintError::ZeroPairs));
    Ok(())
}
