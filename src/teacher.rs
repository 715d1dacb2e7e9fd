//! Simulated teachers: scripted operators that answer preference queries from
//! ground-truth segment returns, for benchmarks and tests.
//!
//! The rule of each teacher lives here and nowhere else, so the dataset fingerprint, the
//! benchmarks and the live demo give the same answer to the same query. A teacher answers
//! left, right or can't tell, never skip.

use crate::answer::Answer;

/// A simulated operator. More teachers of the B-Pref family (oracle, mistake, myopic,
/// Boltzmann, equal) become further variants.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Teacher {
    /// The ε-skip teacher, which cannot tell segments apart whose returns differ by at most
    /// a threshold.
    Skip(SkipTeacher),
}

impl Teacher {
    /// Answers a query from the returns of its left (first) and right (second) segments.
    pub fn answer(&self, return_left: f64, return_right: f64) -> Answer {
        match self {
            Teacher::Skip(teacher) => teacher.answer(return_left, return_right),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let teacher = Teacher::Skip(SkipTeacher::new(0.5, 4, 1.0));

        assert_eq!(teacher.answer(10.0, 8.0), Answer::CantTell);
        assert_eq!(teacher.answer(8.0, 10.0), Answer::CantTell);
        assert_eq!(teacher.answer(10.0, 7.75), Answer::Left);
        assert_eq!(teacher.answer(7.75, 10.0), Answer::Right);
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
