//! Splitting a dataset's steps into episodes.

use std::path::Path;

use ndarray::Array1;

use super::{DatasetError, Episode, EpisodeEnd};

/// Splits at every step where `terminals` or `timeouts` is true, and at the last step.
/// `terminals` and `timeouts` have the same length N ≥ 1.
pub(super) fn split_by_flags(terminals: &Array1<bool>, timeouts: &Array1<bool>) -> Vec<Episode> {
    let step_count = terminals.len();
    let mut episodes = Vec::new();
    let mut start = 0;

    for step in 0..step_count {
        let flagged = terminals[step] || timeouts[step];
        if flagged || step + 1 == step_count {
            episodes.push(Episode {
                start,
                len: step + 1 - start,
                end: episode_end(terminals[step], timeouts[step]),
            });
            start = step + 1;
        }
    }
    episodes
}

/// Splits where `episode_ids` changes, after checking that the ids start at 0, never
/// decrease and never skip a value, and that no terminal or timeout flag lies inside an
/// episode.
pub(super) fn split_by_episode_ids(
    path: &Path,
    episode_ids: &Array1<i64>,
    terminals: &Array1<bool>,
    timeouts: &Array1<bool>,
) -> Result<Vec<Episode>, DatasetError> {
    let step_count = episode_ids.len();
    if episode_ids[0] != 0 {
        return Err(DatasetError::EpisodeIdStart {
            path: path.to_owned(),
            found: episode_ids[0],
        });
    }

    let mut episodes = Vec::new();
    let mut start = 0;
    for step in 0..step_count {
        let id = episode_ids[step];
        let next_id = if step + 1 < step_count {
            Some(episode_ids[step + 1])
        } else {
            None
        };

        match next_id {
            Some(next) if next == id => {
                let flag = if terminals[step] {
                    Some("terminals")
                } else if timeouts[step] {
                    Some("timeouts")
                } else {
                    None
                };
                if let Some(flag) = flag {
                    return Err(DatasetError::FlagInsideEpisode {
                        path: path.to_owned(),
                        flag,
                        step,
                        episode: id,
                    });
                }
            }
            Some(next) if next != id + 1 => {
                return Err(DatasetError::EpisodeIdJump {
                    path: path.to_owned(),
                    step: step + 1,
                    previous: id,
                    next: id + 1,
                    found: next,
                });
            }
            _ => {
                episodes.push(Episode {
                    start,
                    len: step + 1 - start,
                    end: episode_end(terminals[step], timeouts[step]),
                });
                start = step + 1;
            }
        }
    }
    Ok(episodes)
}

/// Checks that `timesteps` counts 0, 1, 2, ... within every episode.
pub(super) fn validate_timesteps(
    path: &Path,
    timesteps: &Array1<i64>,
    episodes: &[Episode],
) -> Result<(), DatasetError> {
    for (episode_index, episode) in episodes.iter().enumerate() {
        for offset in 0..episode.len {
            let step = episode.start + offset;
            let found = timesteps[step];
            if found != offset as i64 {
                return Err(DatasetError::Timestep {
                    path: path.to_owned(),
                    step,
                    found,
                    expected: offset,
                    episode: episode_index,
                });
            }
        }
    }
    Ok(())
}

fn episode_end(terminal: bool, timeout: bool) -> EpisodeEnd {
    if terminal {
        EpisodeEnd::Terminated
    } else if timeout {
        EpisodeEnd::TimedOut
    } else {
        EpisodeEnd::Unmarked
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn flag_split_ends_at_flags_and_file_end() {
        let terminals = array![false, true, false, false, false, false];
        let timeouts = array![false, false, false, true, false, false];

        let episodes = split_by_flags(&terminals, &timeouts);

        let expected = [
            (0, 2, EpisodeEnd::Terminated),
            (2, 2, EpisodeEnd::TimedOut),
            (4, 2, EpisodeEnd::Unmarked),
        ];
        assert_eq!(episodes.len(), expected.len());
        for (episode, (start, len, end)) in episodes.iter().zip(expected) {
            assert_eq!(episode.start, start);
            assert_eq!(episode.len, len);
            assert_eq!(episode.end, end);
        }
    }

    #[test]
    fn terminal_wins_over_timeout_at_same_step() {
        let episodes = split_by_flags(&array![true], &array![true]);
        assert_eq!(episodes[0].end, EpisodeEnd::Terminated);
    }

    #[test]
    fn episode_ids_split_keeps_end_kinds() -> Result<(), DatasetError> {
        let ids = array![0, 0, 1, 1, 1, 2];
        let terminals = array![false, true, false, false, false, false];
        let timeouts = array![false, false, false, false, true, false];

        let episodes = split_by_episode_ids(Path::new("d.npz"), &ids, &terminals, &timeouts)?;

        let ends: Vec<EpisodeEnd> = episodes.iter().map(|e| e.end).collect();
        let lens: Vec<usize> = episodes.iter().map(|e| e.len).collect();
        assert_eq!(
            ends,
            [
                EpisodeEnd::Terminated,
                EpisodeEnd::TimedOut,
                EpisodeEnd::Unmarked
            ]
        );
        assert_eq!(lens, [2, 3, 1]);
        Ok(())
    }

    #[test]
    fn episode_id_change_without_flag_is_unmarked_end() -> Result<(), DatasetError> {
        let flags = array![false, false, false];
        let episodes = split_by_episode_ids(Path::new("d.npz"), &array![0, 1, 1], &flags, &flags)?;
        assert_eq!(episodes[0].end, EpisodeEnd::Unmarked);
        assert_eq!(episodes[1].start, 1);
        Ok(())
    }

    #[test]
    fn flag_inside_episode_rejected() {
        let ids = array![0, 0, 0];
        let terminals = array![false, false, false];
        let timeouts = array![false, true, false];

        let error = split_by_episode_ids(Path::new("d.npz"), &ids, &terminals, &timeouts)
            .unwrap_err()
            .to_string();

        assert!(error.contains("timeouts is true at step 1"), "{error}");
    }

    #[test]
    fn timesteps_must_restart_at_each_episode() {
        let episodes = [
            Episode {
                start: 0,
                len: 2,
                end: EpisodeEnd::TimedOut,
            },
            Episode {
                start: 2,
                len: 2,
                end: EpisodeEnd::TimedOut,
            },
        ];

        let valid = validate_timesteps(Path::new("d.npz"), &array![0, 1, 0, 1], &episodes);
        let error = validate_timesteps(Path::new("d.npz"), &array![0, 1, 2, 3], &episodes)
            .unwrap_err()
            .to_string();

        assert!(valid.is_ok());
        assert!(
            error.contains("timesteps is 2 at step 2, expected 0"),
            "{error}"
        );
    }
}
