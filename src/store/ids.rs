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
    /// Returns the step within the episode one past the segment's last step.
    pub fn end(&self) -> usize {
        self.start + self.length
    }
}

impl fmt::Display for SegmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steps {}..{} of {}",
            self.start,
            self.end(),
            self.episode
        )
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
}
