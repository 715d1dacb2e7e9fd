//! Seeded random draws. The algorithms are written out here instead of taken from a crate,
//! so that the same seed gives the same queries in every build of clarify.

use rand_core::Rng;

/// Returns a uniform integer in `0..bound` by Lemire's multiply-and-reject method, which
/// has no modulo bias.
///
/// # Panics
///
/// Panics when `bound` is 0.
pub(crate) fn uniform_index(rng: &mut impl Rng, bound: usize) -> usize {
    assert!(bound > 0, "uniform_index needs a non-empty range");
    let bound = bound as u64;
    // Products whose low half is below 2^64 mod bound would make small results more likely.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if product as u64 >= threshold {
            return (product >> 64) as usize;
        }
    }
}

/// Returns a uniform float in [0, 1) with 53 random bits.
pub(crate) fn uniform_unit(rng: &mut impl Rng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// Derives the seed of round `round_index` from a run's base seed with the SplitMix64
/// output function, so that each round has its own seed and neighbouring rounds get
/// unrelated streams.
pub fn round_seed(base_seed: u64, round_index: u64) -> u64 {
    let mut value = base_seed.wrapping_add(
        round_index
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;
    use rand_xoshiro::{SplitMix64, Xoshiro256PlusPlus};

    use super::*;

    #[test]
    fn uniform_index_stays_in_range_and_hits_every_value() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[uniform_index(&mut rng, 7)] += 1;
        }
        for (value, count) in seen.iter().enumerate() {
            assert!(
                (800..1200).contains(count),
                "value {value} drawn {count} times"
            );
        }
    }

    #[test]
    fn uniform_unit_stays_in_unit_interval() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        for _ in 0..10_000 {
            let value = uniform_unit(&mut rng);
            assert!((0.0..1.0).contains(&value), "{value}");
        }
    }

    #[test]
    fn round_seed_matches_splitmix64_stream() {
        // SplitMix64 seeded with s returns mix(s + k · golden) as its k-th output (k from 1).
        let mut rng = SplitMix64::seed_from_u64(42);
        for round in 0..4 {
            assert_eq!(round_seed(42, round), rng.next_u64(), "round {round}");
        }
    }
}
