//! The dataset fingerprint: summary statistics that identify a dataset and show how hard
//! its preference queries are.
//!
//! The Python generator computes the same fingerprint and writes it to the dataset's JSON
//! sidecar. The two must agree exactly, so the arithmetic order here is fixed:
//!
//! - returns come from the float64 prefix sum in step order ([`RewardPrefixSum`]); an
//!   episode's return is `c[end] − c[start]`, like a segment's;
//! - the mean step reward is `c[N] / N`;
//! - the mean and population std of episode returns add one episode at a time, in episode
//!   order. (numpy's `sum`, `mean` and `std` add pairwise and can differ in the last bits.)
//! - histogram edges are `numpy.linspace(min, max, 11)`, and the bin of a return R is
//!   floor((R − min) / (max − min) · 10) clamped to 0..=9, or bin 0 when max equals min;
//! - query pairs come from SplitMix64 seeded with the pair seed: a = next() mod S, then
//!   b = next() mod S, drawn again while b equals a. Pairs may repeat.
//! - each pair is answered by the ε-skip teacher for every ε in [`CLEAR_SHARE_EPSILONS`].
//!
//! JSON keys for ε values are written the way Python's `str(float)` writes them ("0.5").

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::SplitMix64;
use serde::ser::{Serialize, SerializeMap, Serializer};
use thiserror::Error;

use crate::answer::Answer;
use crate::dataset::Dataset;
use crate::segment::{DEFAULT_SEGMENT_LENGTH, RewardPrefixSum, Segments, ZeroSegmentLength};
use crate::teacher::SkipTeacher;

/// The ε values of the skip teachers whose clear-answer share the fingerprint reports.
pub const CLEAR_SHARE_EPSILONS: [f64; 2] = [0.5, 0.7];

/// Default number of random segment pairs.
pub const DEFAULT_PAIR_COUNT: usize = 2000;

/// Number of equal-width bins in the episode return histogram.
pub const HISTOGRAM_BINS: usize = 10;

/// Settings of a fingerprint computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FingerprintConfig {
    /// Segment length H in steps.
    pub segment_length: usize,
    /// Number of random segment pairs that the teachers answer.
    pub pairs: usize,
    /// Seed of the SplitMix64 generator that draws the pairs.
    pub pair_seed: u64,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        Self {
            segment_length: DEFAULT_SEGMENT_LENGTH,
            pairs: DEFAULT_PAIR_COUNT,
            pair_seed: 0,
        }
    }
}

/// Settings that cannot produce a fingerprint for a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FingerprintError {
    #[error(transparent)]
    ZeroSegmentLength(#[from] ZeroSegmentLength),

    #[error("invalid pair count 0: the clear share needs at least 1 pair")]
    ZeroPairs,

    #[error(
        "the dataset has {segments} segment(s) of {segment_length} steps, but pair sampling \
         needs at least 2: use a shorter segment length"
    )]
    TooFewSegments {
        segments: usize,
        segment_length: usize,
    },
}

/// The dataset fingerprint, serialized with the JSON keys of the dataset sidecar.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fingerprint {
    pub episodes: usize,
    pub steps: usize,
    pub segment_length: usize,
    pub segments: usize,
    /// Episodes shorter than the segment length, which give no segment.
    pub short_episodes: usize,
    /// Share of episodes with the success flag set at any step; `None` without a success
    /// field.
    pub success_rate_any: Option<f64>,
    /// Share of episodes with the success flag set at their last step; `None` without a
    /// success field.
    pub success_rate_final: Option<f64>,
    /// Sum of all rewards divided by the number of steps.
    pub mean_step_reward: f64,
    pub episode_return: ReturnStats,
    /// Share of pairs that each ε-skip teacher answers left or right.
    pub clear_share: EpsilonMap<f64>,
    pub pairs: usize,
    pub pair_seed: u64,
}

/// Statistics of the episode returns.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReturnStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation (divided by the episode count).
    pub std: f64,
    pub histogram: Histogram,
}

/// Equal-width histogram from min to max.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Histogram {
    /// `HISTOGRAM_BINS + 1` bin edges, from min to max.
    pub edges: Vec<f64>,
    /// Number of returns in each bin.
    pub counts: Vec<usize>,
}

/// Values keyed by a teacher's ε, kept in insertion order and serialized as a JSON object
/// whose keys are Python's `str(float)` of each ε.
#[derive(Clone, Debug, PartialEq)]
pub struct EpsilonMap<T>(pub Vec<(f64, T)>);

impl<T: Serialize> Serialize for EpsilonMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (epsilon, value) in &self.0 {
            map.serialize_entry(&python_float_str(*epsilon), value)?;
        }
        map.end()
    }
}

/// One random query pair with its returns and each skip teacher's answer; one line of the
/// pair dump.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SampledPair {
    /// Index of the left (first) segment.
    pub a: usize,
    /// Index of the right (second) segment.
    pub b: usize,
    pub return_a: f64,
    pub return_b: f64,
    pub answers: EpsilonMap<Answer>,
}

/// The fingerprint together with the pairs it was computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct FingerprintReport {
    pub fingerprint: Fingerprint,
    pub pairs: Vec<SampledPair>,
}

/// Computes the fingerprint of `dataset` and the sampled pairs behind its clear shares.
pub fn compute(
    dataset: &Dataset,
    config: &FingerprintConfig,
) -> Result<FingerprintReport, FingerprintError> {
    if config.pairs == 0 {
        return Err(FingerprintError::ZeroPairs);
    }
    let segments = Segments::enumerate(dataset.episodes(), config.segment_length)?;
    if segments.len() < 2 {
        return Err(FingerprintError::TooFewSegments {
            segments: segments.len(),
            segment_length: config.segment_length,
        });
    }

    let prefix = RewardPrefixSum::new(dataset.rewards());
    let mean_step_reward = prefix.total() / dataset.step_count() as f64;
    let episode_returns: Vec<f64> = dataset
        .episodes()
        .iter()
        .map(|episode| prefix.range_sum(episode.start, episode.len))
        .collect();
    let (success_rate_any, success_rate_final) = success_rates(dataset);

    let teachers: Vec<SkipTeacher> = CLEAR_SHARE_EPSILONS
        .iter()
        .map(|&epsilon| SkipTeacher::new(epsilon, config.segment_length, mean_step_reward))
        .collect();
    let pairs: Vec<SampledPair> = sample_pairs(segments.len(), config.pairs, config.pair_seed)
        .into_iter()
        .map(|(a, b)| answer_pair(&segments, &prefix, &teachers, a, b))
        .collect();
    let clear_share = clear_shares(&teachers, &pairs);

    let fingerprint = Fingerprint {
        episodes: dataset.episodes().len(),
        steps: dataset.step_count(),
        segment_length: config.segment_length,
        segments: segments.len(),
        short_episodes: segments.short_episodes(),
        success_rate_any,
        success_rate_final,
        mean_step_reward,
        episode_return: return_stats(&episode_returns),
        clear_share,
        pairs: config.pairs,
        pair_seed: config.pair_seed,
    };
    Ok(FingerprintReport { fingerprint, pairs })
}

/// Draws `count` pairs of distinct segment indices in 0..`segment_count` from SplitMix64
/// seeded with `seed`.
///
/// # Panics
///
/// Panics when `segment_count < 2`, because no pair of distinct segments exists.
pub fn sample_pairs(segment_count: usize, count: usize, seed: u64) -> Vec<(usize, usize)> {
    assert!(
        segment_count >= 2,
        "pair sampling needs at least 2 segments"
    );
    let modulus = segment_count as u64;
    let mut rng = SplitMix64::seed_from_u64(seed);

    (0..count)
        .map(|_| {
            let a = rng.next_u64() % modulus;
            let mut b = rng.next_u64() % modulus;
            while b == a {
                b = rng.next_u64() % modulus;
            }
            (a as usize, b as usize)
        })
        .collect()
}

fn answer_pair(
    segments: &Segments,
    prefix: &RewardPrefixSum,
    teachers: &[SkipTeacher],
    a: usize,
    b: usize,
) -> SampledPair {
    let return_a = segments.segment_return(prefix, a);
    let return_b = segments.segment_return(prefix, b);
    let answers = teachers
        .iter()
        .map(|teacher| (teacher.epsilon(), teacher.answer(return_a, return_b)))
        .collect();
    SampledPair {
        a,
        b,
        return_a,
        return_b,
        answers: EpsilonMap(answers),
    }
}

fn clear_shares(teachers: &[SkipTeacher], pairs: &[SampledPair]) -> EpsilonMap<f64> {
    let shares = teachers
        .iter()
        .enumerate()
        .map(|(index, teacher)| {
            let clear = pairs
                .iter()
                .filter(|pair| pair.answers.0[index].1.is_clear())
                .count();
            (teacher.epsilon(), clear as f64 / pairs.len() as f64)
        })
        .collect();
    EpsilonMap(shares)
}

/// Returns the shares of episodes with success at any step and at the last step.
fn success_rates(dataset: &Dataset) -> (Option<f64>, Option<f64>) {
    let Some(success) = dataset.success() else {
        return (None, None);
    };
    let episodes = dataset.episodes();

    let mut any = 0_usize;
    let mut last = 0_usize;
    for episode in episodes {
        if (episode.start..episode.end_step()).any(|step| success[step]) {
            any += 1;
        }
        if success[episode.end_step() - 1] {
            last += 1;
        }
    }

    let count = episodes.len() as f64;
    (Some(any as f64 / count), Some(last as f64 / count))
}

/// Computes min, max, mean, population std and the histogram of a non-empty list.
fn return_stats(returns: &[f64]) -> ReturnStats {
    let count = returns.len() as f64;
    let min = returns.iter().copied().fold(f64::INFINITY, f64::min);
    let max = returns.iter().copied().fold(f64::NEG_INFINITY, f64::max);

    let mut sum = 0.0;
    for &value in returns {
        sum += value;
    }
    let mean = sum / count;

    let mut squared_deviations = 0.0;
    for &value in returns {
        let deviation = value - mean;
        squared_deviations += deviation * deviation;
    }
    let std = (squared_deviations / count).sqrt();

    ReturnStats {
        min,
        max,
        mean,
        std,
        histogram: histogram(returns, min, max),
    }
}

fn histogram(values: &[f64], min: f64, max: f64) -> Histogram {
    let width = max - min;
    let mut counts = vec![0; HISTOGRAM_BINS];
    for &value in values {
        let bin = if max == min {
            0
        } else {
            let position = ((value - min) / width * HISTOGRAM_BINS as f64).floor();
            position.clamp(0.0, (HISTOGRAM_BINS - 1) as f64) as usize
        };
        counts[bin] += 1;
    }

    Histogram {
        edges: linspace_edges(min, max),
        counts,
    }
}

/// Computes `numpy.linspace(min, max, HISTOGRAM_BINS + 1)` with numpy's arithmetic:
/// edge i is i · step + min with step = (max − min) / bins, and the last edge is max.
fn linspace_edges(min: f64, max: f64) -> Vec<f64> {
    let bins = HISTOGRAM_BINS as f64;
    let delta = max - min;
    let step = delta / bins;

    let mut edges: Vec<f64> = (0..=HISTOGRAM_BINS)
        .map(|i| {
            let i = i as f64;
            if step == 0.0 {
                i / bins * delta + min
            } else {
                i * step + min
            }
        })
        .collect();
    edges[HISTOGRAM_BINS] = max;
    edges
}

/// Formats a float the way Python's `str(float)` and `repr(float)` do: the shortest digits
/// that read back to the same value, positional for decimal exponents -4..16 (always with a
/// fractional part, as in "1.0"), scientific with a signed two-digit exponent otherwise.
fn python_float_str(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }

    // Rust's `{:e}` prints the shortest round-trip digits, like Python's repr.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` output contains an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(unsigned) => ("-", unsigned),
        None => ("", mantissa),
    };

    if !(-4..16).contains(&exponent) {
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs());
    }

    let digits = mantissa.replace('.', "");
    let positional = if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        format!("0.{zeros}{digits}")
    } else {
        let integer_len = exponent as usize + 1;
        if digits.len() <= integer_len {
            let zeros = "0".repeat(integer_len - digits.len());
            format!("{digits}{zeros}.0")
        } else {
            format!("{}.{}", &digits[..integer_len], &digits[integer_len..])
        }
    };
    format!("{sign}{positional}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_vector() {
        // Outputs of Vigna's splitmix64.c for the seed 1234567.
        let mut rng = SplitMix64::seed_from_u64(1234567);
        let outputs = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        assert_eq!(
            outputs,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn splitmix64_seed_sets_state_to_seed() {
        for seed in [0, 1, 1234567, u64::MAX] {
            let rng = SplitMix64::seed_from_u64(seed);
            assert_eq!(rng.state(), seed.to_le_bytes(), "seed {seed}");
        }
    }

    #[test]
    fn sampled_pairs_follow_draw_order() {
        let mut rng = SplitMix64::seed_from_u64(7);
        let mut expected = Vec::new();
        for _ in 0..50 {
            let a = rng.next_u64() % 3;
            let mut b = rng.next_u64() % 3;
            while b == a {
                b = rng.next_u64() % 3;
            }
            expected.push((a as usize, b as usize));
        }

        assert_eq!(sample_pairs(3, 50, 7), expected);
    }

    #[test]
    fn sampled_pairs_never_pair_segment_with_itself() {
        let pairs = sample_pairs(2, 500, 0);
        assert_eq!(pairs.len(), 500);
        for (a, b) in pairs {
            assert_ne!(a, b);
            assert!(a < 2, "segment index {a} out of range");
            assert!(b < 2, "segment index {b} out of range");
        }
    }

    #[test]
    fn python_float_str_matches_python_repr() {
        // Expected strings are the output of Python 3's repr() for the same values.
        let cases = [
            (0.5, "0.5"),
            (0.7, "0.7"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234567e20, "1.2345678901234567e+20"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456789.125, "123456789.125"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-3.25e-300, "-3.25e-300"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_str(value), expected, "{value:e}");
        }
    }

    #[test]
    fn histogram_clamps_max_into_last_bin() {
        let spread = histogram(&[0.0, 0.95, 1.0, 10.0], 0.0, 10.0);
        assert_eq!(spread.counts, [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn histogram_of_equal_values_uses_first_bin() {
        let flat = histogram(&[3.0, 3.0], 3.0, 3.0);
        assert_eq!(flat.counts, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(flat.edges, [3.0; 11]);
    }

    #[test]
    fn histogram_edges_follow_numpy_linspace() {
        let edges = linspace_edges(-1.0, 0.3);
        let step = 1.3 / 10.0;

        assert_eq!(edges.len(), 11);
        assert_eq!(edges[0], -1.0);
        assert_eq!(edges[3], 3.0 * step + -1.0);
        assert_eq!(edges[10], 0.3);
    }

    #[test]
    fn epsilon_map_serializes_python_keys_in_order() -> Result<(), serde_json::Error> {
        let map = EpsilonMap(vec![
            (0.7, Answer::Left),
            (0.5, Answer::CantTell),
            (1.0, Answer::Right),
        ]);
        assert_eq!(
            serde_json::to_string(&map)?,
            r#"{"0.7":"left","0.5":"cant_tell","1.0":"right"}"#
        );
        Ok(())
    }
}
