//! Row ids of the segment store and the segment reference that queries and label files use.
//!
//! Ids are SQLite `INTEGER PRIMARY KEY` values, assigned by the store on insert. They are
//! unique within one database file only: the same number in another robot's database names
//! a different row.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Returns the row id as SQLite stores it.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", $label, self.0)
            }
        }
    };
}

row_id!(
    /// Id of a row in the `datasets` table.
    DatasetId,
    "dataset"
);
row_id!(
    /// Id of a row in the `episodes` table, unique across all datasets of one store.
    EpisodeId,
    "episode"
);
row_id!(
    /// Id of a row in the `queries` table.
    QueryId,
    "query"
);

/// One side of a query: `length` consecutive steps of an episode, starting at step `start`
/// of that episode (0-based, counted within the episode, not the dataset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    /// The episode that contains the segment.
    pub episode: EpisodeId,
    /// First step of the segment within the episode.
    pub start: usize,
    /// Number of steps, at least 1.
    pub length: usize,
}

impl SegmentRef {
    /// Returns the step within the episode one past the segment's last step, or `None`
    /// when `start + length` exceeds `usize::MAX`. `start` and `length` can come from a
    /// label file, so the sum is checked.
    pub fn end(&self) -> Option<usize> {
        self.start.checked_add(self.length)
    }

    /// Returns whether the two segments share at least one step of the same episode.
    /// A segment of length 0 shares no step.
    pub fn overlaps(&self, other: &SegmentRef) -> bool {
        // Saturating keeps a segment whose end exceeds `usize::MAX` running to the last index.
        self.episode == other.episode
            && self.length > 0
            && other.length > 0
            && self.start < other.start.saturating_add(other.length)
            && other.start < self.start.saturating_add(self.length)
    }
}

impl fmt::Display for SegmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end() {
            Some(end) => write!(f, "steps {}..{end} of {}", self.start, self.episode),
            None => write!(
                f,
                "{} steps from step {} of {}",
                self.length, self.start, self.episode
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_numbers() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&QueryId(7))?, "7");
        assert_eq!(serde_json::from_str::<EpisodeId>("12")?, EpisodeId(12));
        Ok(())
    }

    #[test]
    fn ids_display_with_table_name() {
        assert_eq!(DatasetId(3).to_string(), "dataset 3");
        assert_eq!(EpisodeId(4).to_string(), "episode 4");
        assert_eq!(QueryId(5).to_string(), "query 5");
    }

    #[test]
    fn segment_display_gives_step_range() {
        let segment = SegmentRef {
            episode: EpisodeId(2),
            start: 10,
            length: 50,
        };
        assert_eq!(segment.to_string(), "steps 10..60 of episode 2");
    }

    #[test]
    fn segment_end_past_usize_max_is_none() {
        let segment = SegmentRef {
            episode: EpisodeId(2),
            start: usize::MAX - 2,
            length: 5,
        };
        assert_eq!(segment.end(), None);
        assert_eq!(
            segment.to_string(),
            format!("5 steps from step {} of episode 2", usize::MAX - 2)
        );
    }

    #[test]
    fn overlap_needs_a_shared_step_in_the_same_episode() {
        let segment = |episode, start, length| SegmentRef {
            episode: EpisodeId(episode),
            start,
            length,
        };
        assert!(segment(1, 0, 5).overlaps(&segment(1, 4, 5)));
        assert!(segment(1, 4, 5).overlaps(&segment(1, 0, 5)));
        assert!(segment(1, 0, 10).overlaps(&segment(1, 3, 2)));
        assert!(!segment(1, 0, 5).overlaps(&segment(1, 5, 5)));
        assert!(!segment(1, 0, 5).overlaps(&segment(2, 0, 5)));
        assert!(!segment(1, 0, 5).overlaps(&segment(1, 2, 0)));
        assert!(segment(1, 0, 5).overlaps(&segment(1, 3, usize::MAX)));
    }
}
