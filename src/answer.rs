//! Operator answers to a preference query.
//!
//! A query shows two trajectory segments: the first is "left", the second "right". The
//! text form of an answer is one of the words `left`, `right`, `cant_tell` and `skip`, in
//! `Display`, `FromStr` and serde alike, so a word written by one of them is read back by
//! any other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An operator's answer to a query that compares two segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The first (left) segment is better.
    Left,
    /// The second (right) segment is better.
    Right,
    /// The operator watched both segments and cannot see a difference. CLARIFY's ambiguity loss
    /// learns from these answers, so they are data, not missing labels.
    CantTell,
    /// The operator gave no information. Skipped queries are used neither for the reward
    /// model nor as ambiguous examples.
    Skip,
}

impl Answer {
    /// All answers, in the order that help text and error messages list them.
    pub const ALL: [Answer; 4] = [Answer::Left, Answer::Right, Answer::CantTell, Answer::Skip];

    /// Returns the word that stands for this answer in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Left => "left",
            Answer::Right => "right",
            Answer::CantTell => "cant_tell",
            Answer::Skip => "skip",
        }
    }

    /// Returns whether the answer prefers one segment (left or right).
    pub fn is_clear(self) -> bool {
        matches!(self, Answer::Left | Answer::Right)
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a word that is not one of the answer words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid answer {value:?}: expected one of left, right, cant_tell, skip")]
pub struct ParseAnswerError {
    /// The rejected text.
    pub value: String,
}

impl FromStr for Answer {
    type Err = ParseAnswerError;

    /// Parses one of the words `left`, `right`, `cant_tell`, `skip`. Matching is exact:
    /// other spellings and letter cases are rejected.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Answer::ALL
            .into_iter()
            .find(|answer| answer.as_str() == text)
            .ok_or_else(|| ParseAnswerError {
                value: text.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_words_round_trip_through_text_and_json() -> Result<(), Box<dyn std::error::Error>> {
        for answer in Answer::ALL {
            let word = answer.to_string();
            assert_eq!(word.parse::<Answer>()?, answer);

            let json = serde_json::to_string(&answer)?;
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<Answer>(&json)?, answer);
        }
        Ok(())
    }

    #[test]
    fn answer_words_are_the_documented_ones() {
        let words: Vec<&str> = Answer::ALL.iter().map(|answer| answer.as_str()).collect();
        assert_eq!(words, ["left", "right", "cant_tell", "skip"]);
    }

    #[test]
    fn unknown_answer_error_names_value_and_valid_words() {
        let error = "Left".parse::<Answer>().unwrap_err();
        let message = error.to_string();

        assert_eq!(error.value, "Left");
        assert!(message.contains("\"Left\""), "{message}");
        for answer in Answer::ALL {
            assert!(message.contains(answer.as_str()), "{message}");
        }
    }

    #[test]
    fn unknown_answer_rejected_by_serde() {
        let result = serde_json::from_str::<Answer>("\"cant-tell\"");
        assert!(result.is_err());
    }

    #[test]
    fn only_left_and_right_are_clear() {
        assert!(Answer::Left.is_clear());
        assert!(Answer::Right.is_clear());
        assert!(!Answer::CantTell.is_clear());
        assert!(!Answer::Skip.is_clear());
    }
}
