//! Simulated teachers: scripted operators that answer preference queries from
//! ground-truth segment rewards, for benchmarks and tests.
//!
//! The rule of each teacher lives here and nowhere else, so the dataset fingerprint, the
//! benchmarks and the live demo give the same answer to the same query. A teacher answers
//! left, right or can't tell, never skip. The teachers follow the B-Pref family (Lee et al.,
//! NeurIPS 2021 Datasets and Benchmarks): oracle, ε-skip, mistake, myopic, Boltzmann and
//! equal.
//!
//! The stochastic teachers (mistake, Boltzmann) own a xoshiro256++ generator seeded at
//! construction, so a teacher built with the same seed gives the same answers to the same
//! sequence of queries.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use thiserror::Error;

use crate::answer::Answer;

/// Error for a teacher parameter outside its valid range.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid teacher parameter {parameter} = {value}: expected {expected}")]
pub struct InvalidTeacherParameter {
    /// Name of the parameter, such as `mistake probability`.
    pub parameter: &'static str,
    /// The rejected value.
    pub value: f64,
    /// The valid range.
    pub expected: &'static str,
}

/// Ground-truth rewards of the two segments of a query.
///
/// The returns are separate fields because callers that share answers with other programs
/// compute them from a [`RewardPrefixSum`](crate::segment::RewardPrefixSum), whose
/// differences need not equal a direct sum to the bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryRewards<'a> {
    /// Per-step rewards of the left (first) segment, in step order.
    pub left: &'a [f32],
    /// Per-step rewards of the right (second) segment, in step order.
    pub right: &'a [f32],
    /// Return R0 of the left segment.
    pub return_left: f64,
    /// Return R1 of the right segment.
    pub return_right: f64,
}

impl<'a> QueryRewards<'a> {
    /// Creates the query from per-step rewards. Each return is the sum of its segment's
    /// rewards, widened to f64 and added in step order.
    pub fn new(left: &'a [f32], right: &'a [f32]) -> Self {
        Self {
            left,
            right,
            return_left: sum_in_step_order(left),
            return_right: sum_in_step_order(right),
        }
    }
}

fn sum_in_step_order(rewards: &[f32]) -> f64 {
    rewards.iter().map(|&reward| f64::from(reward)).sum()
}

/// A simulated operator.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Teacher {
    /// The perfectly rational teacher, see [`oracle_answer`].
    Oracle,
    /// The ε-skip teacher, which cannot tell segments apart whose returns differ by at most
    /// a threshold.
    Skip(SkipTeacher),
    /// The oracle with random flips of its clear answers.
    Mistake(MistakeTeacher),
    /// The oracle on discounted returns, which weights late steps more.
    Myopic(MyopicTeacher),
    /// A teacher that prefers a segment with the Bradley-Terry probability of its return.
    Boltzmann(BoltzmannTeacher),
    /// The oracle, except that it cannot tell returns apart closer than a threshold.
    Equal(EqualTeacher),
}

impl Teacher {
    /// Answers a query with this teacher's rule. Only the myopic teacher reads the per-step
    /// rewards, and the others read only the returns.
    pub fn answer(&mut self, query: &QueryRewards<'_>) -> Answer {
        let (left, right) = (query.return_left, query.return_right);
        match self {
            Teacher::Oracle => oracle_answer(left, right),
            Teacher::Skip(teacher) => teacher.answer(left, right),
            Teacher::Mistake(teacher) => teacher.answer(left, right),
            Teacher::Myopic(teacher) => teacher.answer(query.left, query.right),
            Teacher::Boltzmann(teacher) => teacher.answer(left, right),
            Teacher::Equal(teacher) => teacher.answer(left, right),
        }
    }
}

/// Answers "left" when R0 > R1, "right" when R1 > R0 and "can't tell" when they are equal
/// (or when either is NaN, because then neither comparison holds).
pub fn oracle_answer(return_left: f64, return_right: f64) -> Answer {
    if return_left > return_right {
        Answer::Left
    } else if return_right > return_left {
        Answer::Right
    } else {
        Answer::CantTell
    }
}

/// The ε-skip teacher: it answers "can't tell" when two segment returns differ by at most
/// T = ε · H · r̄, with H the segment length in steps and r̄ the dataset's mean step reward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkipTeacher {
    epsilon: f64,
    threshold: f64,
}

impl SkipTeacher {
    /// Creates the teacher for ε = `epsilon`, segments of `segment_length` steps and mean
    /// step reward `mean_step_reward`.
    pub fn new(epsilon: f64, segment_length: usize, mean_step_reward: f64) -> Self {
        Self {
            epsilon,
            threshold: skip_threshold(epsilon, segment_length, mean_step_reward),
        }
    }

    /// Returns ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Returns the threshold T on the absolute return difference.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Answers "can't tell" when |R0 − R1| ≤ T or R0 = R1, otherwise "left" when R0 > R1
    /// and "right" when R1 > R0.
    ///
    /// The equality test matters when T is negative, which happens with a negative mean
    /// step reward: equal returns are then still "can't tell".
    pub fn answer(&self, return_left: f64, return_right: f64) -> Answer {
        let difference = (return_left - return_right).abs();
        if difference <= self.threshold || return_left == return_right {
            Answer::CantTell
        } else if return_left > return_right {
            Answer::Left
        } else {
            Answer::Right
        }
    }
}

/// Computes T = ε · H · r̄, multiplied left to right in f64 so that the value matches the
/// Python generator's `eps * H * mean` to the bit.
fn skip_threshold(epsilon: f64, segment_length: usize, mean_step_reward: f64) -> f64 {
    epsilon * segment_length as f64 * mean_step_reward
}

/// Draws a uniform f64 in [0, 1) from the top 53 bits of one 64-bit draw.
fn uniform_unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

fn check_probability(parameter: &'static str, value: f64) -> Result<(), InvalidTeacherParameter> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidTeacherParameter {
            parameter,
            value,
            expected: "a probability in [0, 1]",
        })
    }
}

fn check_non_negative(parameter: &'static str, value: f64) -> Result<(), InvalidTeacherParameter> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(InvalidTeacherParameter {
            parameter,
            value,
            expected: "a finite value ≥ 0",
        })
    }
}

/// The mistake teacher: the oracle, with each clear answer flipped (left to right or right
/// to left) with probability p.
#[derive(Clone, Debug, PartialEq)]
pub struct MistakeTeacher {
    probability: f64,
    rng: Xoshiro256PlusPlus,
}

impl MistakeTeacher {
    /// Creates the teacher with flip probability `probability` in [0, 1], drawing from a
    /// generator seeded with `seed`.
    pub fn new(probability: f64, seed: u64) -> Result<Self, InvalidTeacherParameter> {
        check_probability("mistake probability", probability)?;
        Ok(Self {
            probability,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        })
    }

    /// Returns the flip probability p.
    pub fn probability(&self) -> f64 {
        self.probability
    }

    /// Answers like [`oracle_answer`] and flips a clear answer when a uniform draw u in
    /// [0, 1) is below p. A "can't tell" answer consumes no draw and is never flipped.
    pub fn answer(&mut self, return_left: f64, return_right: f64) -> Answer {
        let answer = oracle_answer(return_left, return_right);
        if !answer.is_clear() || uniform_unit(&mut self.rng) >= self.probability {
            return answer;
        }
        match answer {
            Answer::Left => Answer::Right,
            _ => Answer::Left,
        }
    }
}

/// The myopic teacher: the oracle on discounted returns Σ_t γ^(H−1−t) · r_t, where H is the
/// segment length and t = 0 is the first step, so the last step has weight 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MyopicTeacher {
    gamma: f64,
}

impl MyopicTeacher {
    /// Creates the teacher with discount `gamma` in [0, 1]. γ = 1 is the oracle.
    pub fn new(gamma: f64) -> Result<Self, InvalidTeacherParameter> {
        check_probability("myopic gamma", gamma)?;
        Ok(Self { gamma })
    }

    /// Returns the discount γ.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Answers like [`oracle_answer`] on the discounted returns of the two segments. Each
    /// segment is weighted by its own length H.
    pub fn answer(&self, rewards_left: &[f32], rewards_right: &[f32]) -> Answer {
        oracle_answer(
            self.discounted_return(rewards_left),
            self.discounted_return(rewards_right),
        )
    }

    /// Computes Σ_t γ^(H−1−t) · r_t in f64 with Horner's rule (total ← γ · total + r_t in
    /// step order), so that γ = 1 gives the plain sum in step order.
    pub fn discounted_return(&self, rewards: &[f32]) -> f64 {
        rewards
            .iter()
            .fold(0.0, |total, &reward| self.gamma * total + f64::from(reward))
    }
}

/// The Boltzmann (stochastic Bradley-Terry) teacher: it answers "left" with probability
/// exp(β·R0) / (exp(β·R0) + exp(β·R1)) and "right" otherwise, never "can't tell".
#[derive(Clone, Debug, PartialEq)]
pub struct BoltzmannTeacher {
    beta: f64,
    rng: Xoshiro256PlusPlus,
}

impl BoltzmannTeacher {
    /// Creates the teacher with rationality `beta` ≥ 0 (0 answers at random, larger values
    /// approach the oracle), drawing from a generator seeded with `seed`.
    pub fn new(beta: f64, seed: u64) -> Result<Self, InvalidTeacherParameter> {
        check_non_negative("Boltzmann beta", beta)?;
        Ok(Self {
            beta,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        })
    }

    /// Returns the rationality β.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Returns P(left) = exp(β·R0) / (exp(β·R0) + exp(β·R1)).
    ///
    /// The ratio equals the logistic function of d = β·(R0 − R1), evaluated with exp(−|d|)
    /// so that no exponential overflows: returns of ±1e4 give 1 or 0, not NaN.
    pub fn left_probability(&self, return_left: f64, return_right: f64) -> f64 {
        let logit = self.beta * (return_left - return_right);
        let small = (-logit.abs()).exp();
        if logit >= 0.0 {
            1.0 / (1.0 + small)
        } else {
            small / (1.0 + small)
        }
    }

    /// Answers "left" when a uniform draw u in [0, 1) is below P(left), otherwise "right".
    pub fn answer(&mut self, return_left: f64, return_right: f64) -> Answer {
        let probability = self.left_probability(return_left, return_right);
        if uniform_unit(&mut self.rng) < probability {
            Answer::Left
        } else {
            Answer::Right
        }
    }
}

/// The equal teacher: "can't tell" when |R0 − R1| is below an absolute threshold, the
/// oracle otherwise.
///
/// Unlike the ε-skip teacher, the threshold is given directly and a difference equal to it
/// is answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EqualTeacher {
    threshold: f64,
}

impl EqualTeacher {
    /// Creates the teacher with threshold `threshold` ≥ 0 on |R0 − R1|.
    pub fn new(threshold: f64) -> Result<Self, InvalidTeacherParameter> {
        check_non_negative("equal threshold", threshold)?;
        Ok(Self { threshold })
    }

    /// Returns the threshold on |R0 − R1|.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Answers "can't tell" when |R0 − R1| < threshold, otherwise like [`oracle_answer`].
    pub fn answer(&self, return_left: f64, return_right: f64) -> Answer {
        if (return_left - return_right).abs() < self.threshold {
            Answer::CantTell
        } else {
            oracle_answer(return_left, return_right)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query with the given returns and no per-step rewards.
    fn returns(return_left: f64, return_right: f64) -> QueryRewards<'static> {
        QueryRewards {
            left: &[],
            right: &[],
            return_left,
            return_right,
        }
    }

    #[test]
    fn skip_threshold_is_eps_times_h_times_mean() {
        let teacher = SkipTeacher::new(0.5, 50, 2.0);
        assert_eq!(teacher.threshold(), 50.0);
        assert_eq!(teacher.epsilon(), 0.5);
    }

    #[test]
    fn skip_threshold_multiplies_left_to_right() {
        // (0.7 * 3) * 0.1 and 0.7 * (3 * 0.1) differ in the last bit.
        let epsilon = 0.7;
        let mean = 0.1;
        let left_to_right = (epsilon * 3.0) * mean;
        assert_ne!(left_to_right, epsilon * (3.0 * mean));

        assert_eq!(
            SkipTeacher::new(epsilon, 3, mean).threshold(),
            left_to_right
        );
    }

    #[test]
    fn difference_equal_to_threshold_is_cant_tell() {
        let mut teacher = Teacher::Skip(SkipTeacher::new(0.5, 4, 1.0));

        assert_eq!(teacher.answer(&returns(10.0, 8.0)), Answer::CantTell);
        assert_eq!(teacher.answer(&returns(8.0, 10.0)), Answer::CantTell);
        assert_eq!(teacher.answer(&returns(10.0, 7.75)), Answer::Left);
        assert_eq!(teacher.answer(&returns(7.75, 10.0)), Answer::Right);
    }

    #[test]
    fn equal_returns_are_cant_tell_with_negative_threshold() {
        let teacher = SkipTeacher::new(0.5, 10, -1.0);

        assert!(teacher.threshold() < 0.0);
        assert_eq!(teacher.answer(-3.0, -3.0), Answer::CantTell);
        assert_eq!(teacher.answer(-3.0, -3.5), Answer::Left);
    }

    #[test]
    fn zero_epsilon_answers_every_difference() {
        let teacher = SkipTeacher::new(0.0, 50, 1.0);
        assert_eq!(teacher.answer(1.0, 1.0 + 1e-12), Answer::Right);
        assert_eq!(teacher.answer(1.0, 1.0), Answer::CantTell);
    }
}
