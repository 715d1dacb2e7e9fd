//! Camera frames of recorded steps (table `camera_frames`, schema version 2).
//!
//! A frame is an encoded image (JPEG or PNG bytes) tied to one step of a stored episode.
//! An episode has at most one frame per step, and usually fewer: a step gets a frame only
//! when a camera image arrived since the previous step, so a camera slower than the
//! control rate leaves steps without frames.

use std::fmt;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::error::SqliteContext;
use super::{EpisodeId, SegmentRef, Store, StoreError, check_number, from_sql_int, to_sql_int};

/// Image file format of a stored frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameFormat {
    /// JPEG (JFIF) bytes.
    Jpeg,
    /// PNG bytes.
    Png,
}

impl FrameFormat {
    /// Returns the MIME type that the `content_type` column and HTTP responses use.
    pub fn content_type(self) -> &'static str {
        match self {
            FrameFormat::Jpeg => "image/jpeg",
            FrameFormat::Png => "image/png",
        }
    }

    fn from_content_type(text: &str) -> Result<Self, StoreError> {
        match text {
            "image/jpeg" => Ok(FrameFormat::Jpeg),
            "image/png" => Ok(FrameFormat::Png),
            other => Err(StoreError::StoredValue {
                column: "camera_frames.content_type",
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for FrameFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// Everything stored about a frame except its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameInfo {
    /// Step within the episode (0-based) that the frame belongs to.
    pub step: usize,
    /// Capture time: the image's header stamp, or its receive time when the stamp is unset.
    pub stamp_unix_secs: f64,
    /// Image file format.
    pub format: FrameFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the encoded image in bytes.
    pub byte_count: usize,
}

/// A frame with its encoded image.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraFrame {
    /// Step within the episode (0-based).
    pub step: usize,
    /// Capture time in Unix seconds.
    pub stamp_unix_secs: f64,
    /// Image file format of `data`.
    pub format: FrameFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded image.
    pub data: Vec<u8>,
}

impl CameraFrame {
    /// Returns the frame's description without its bytes.
    pub fn info(&self) -> FrameInfo {
        FrameInfo {
            step: self.step,
            stamp_unix_secs: self.stamp_unix_secs,
            format: self.format,
            width: self.width,
            height: self.height,
            byte_count: self.data.len(),
        }
    }
}

impl Store {
    /// Stores the frames of one episode in one transaction.
    ///
    /// Every frame's step must lie within the episode, its stamp must be finite and its
    /// size non-zero. A step that already has a frame fails the whole call, which stores
    /// nothing then.
    pub fn insert_camera_frames(
        &mut self,
        episode: EpisodeId,
        frames: &[CameraFrame],
    ) -> Result<(), StoreError> {
        let steps = self.episode(episode)?.step_count;
        for frame in frames {
            if frame.step >= steps {
                return Err(StoreError::SegmentOutOfRange {
                    segment: SegmentRef {
                        episode,
                        start: frame.step,
                        length: 1,
                    },
                    steps,
                });
            }
            check_number(
                "camera_frames.stamp_unix_secs",
                frame.stamp_unix_secs,
                false,
            )?;
            if frame.width == 0 || frame.height == 0 {
                return Err(StoreError::InvalidNumber {
                    field: "camera_frames.width × height",
                    value: f64::from(frame.width) * f64::from(frame.height),
                    non_negative: true,
                });
            }
        }

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin storing camera frames")?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO camera_frames (episode_id, step, stamp_unix_secs, \
                     content_type, width, height, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .during("prepare the camera frame insert")?;
            for frame in frames {
                insert
                    .execute(params![
                        episode.get(),
                        to_sql_int(frame.step),
                        frame.stamp_unix_secs,
                        frame.format.content_type(),
                        i64::from(frame.width),
                        i64::from(frame.height),
                        frame.data,
                    ])
                    .during("insert a camera frame")?;
            }
        }
        transaction.commit().during("commit camera frames")?;
        Ok(())
    }

    /// Returns the frames of a segment's steps without their bytes, in step order.
    ///
    /// Fails when the episode does not exist or the segment is empty or ends after the
    /// episode's last step.
    pub fn camera_frame_infos(&self, segment: SegmentRef) -> Result<Vec<FrameInfo>, StoreError> {
        let end = self.check_segment(segment)?;
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT step, stamp_unix_secs, content_type, width, height, length(data) \
                 FROM camera_frames WHERE episode_id = ?1 AND step >= ?2 AND step < ?3 \
                 ORDER BY step",
            )
            .during("prepare the camera frame query")?;
        let rows = statement
            .query_map(
                params![
                    segment.episode.get(),
                    to_sql_int(segment.start),
                    to_sql_int(end)
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, f64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, i64>(5)?,
                    ))
                },
            )
            .during("query camera frames")?;
        let mut infos = Vec::new();
        for row in rows {
            let (step, stamp, content_type, width, height, bytes) =
                row.during("read a camera frame row")?;
            infos.push(FrameInfo {
                step: from_sql_int("camera_frames.step", step)?,
                stamp_unix_secs: stamp,
                format: FrameFormat::from_content_type(&content_type)?,
                width: to_dimension("camera_frames.width", width)?,
                height: to_dimension("camera_frames.height", height)?,
                byte_count: from_sql_int("length(camera_frames.data)", bytes)?,
            });
        }
        Ok(infos)
    }

    /// Returns the frame of one step, or `None` when the step has none.
    ///
    /// Fails when the episode does not exist or has no such step.
    pub fn camera_frame(
        &self,
        episode: EpisodeId,
        step: usize,
    ) -> Result<Option<CameraFrame>, StoreError> {
        self.check_segment(SegmentRef {
            episode,
            start: step,
            length: 1,
        })?;
        let row = self
            .connection
            .query_row(
                "SELECT stamp_unix_secs, content_type, width, height, data FROM camera_frames \
                 WHERE episode_id = ?1 AND step = ?2",
                params![episode.get(), to_sql_int(step)],
                |row| {
                    Ok((
                        row.get::<_, f64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()
            .during("read a camera frame")?;
        let Some((stamp, content_type, width, height, data)) = row else {
            return Ok(None);
        };
        Ok(Some(CameraFrame {
            step,
            stamp_unix_secs: stamp,
            format: FrameFormat::from_content_type(&content_type)?,
            width: to_dimension("camera_frames.width", width)?,
            height: to_dimension("camera_frames.height", height)?,
            data,
        }))
    }

    /// Checks that a segment is non-empty and lies within its stored episode, and returns
    /// the step one past its end.
    fn check_segment(&self, segment: SegmentRef) -> Result<usize, StoreError> {
        if segment.length == 0 {
            return Err(StoreError::EmptySegment(segment));
        }
        let end = segment
            .end()
            .ok_or(StoreError::SegmentEndOverflow(segment))?;
        let steps = self.episode(segment.episode)?.step_count;
        if end > steps {
            return Err(StoreError::SegmentOutOfRange { segment, steps });
        }
        Ok(end)
    }
}

fn to_dimension(column: &'static str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::StoredValue {
        column,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ndarray::{Array1, Array2};

    use super::*;
    use crate::dataset::EpisodeEnd;
    use crate::store::{ContentHash, DatasetMeta, EpisodeArrays};

    fn store_with_episode(
        steps: usize,
    ) -> Result<(tempfile::TempDir, Store, EpisodeId), StoreError> {
        let folder = tempfile::tempdir().expect("temporary folder");
        let mut store = Store::open(folder.path().join("frames.sqlite"))?;
        let dataset = store.create_recording(
            &DatasetMeta {
                name: "camera".into(),
                source_path: PathBuf::from("ros2:/camera"),
                content_hash: ContentHash::of_bytes(b"camera session"),
                sidecar_json: None,
                imported_at_unix_secs: 1.0,
            },
            1,
            1,
        )?;
        let observations = Array2::zeros((steps, 1));
        let arrays = EpisodeArrays {
            next_observations: observations.clone(),
            observations,
            actions: Array2::zeros((steps, 1)),
            rewards: Array1::zeros(steps),
        };
        let episode = store.append_episode(dataset, &arrays, EpisodeEnd::Unmarked)?;
        Ok((folder, store, episode))
    }

    fn frame(step: usize) -> CameraFrame {
        CameraFrame {
            step,
            stamp_unix_secs: 10.0 + step as f64,
            format: FrameFormat::Png,
            width: 2,
            height: 1,
            data: vec![step as u8; 5],
        }
    }

    #[test]
    fn frames_read_back_by_segment() -> Result<(), StoreError> {
        let (_folder, mut store, episode) = store_with_episode(6)?;
        store.insert_camera_frames(episode, &[frame(0), frame(2), frame(5)])?;

        let infos = store.camera_frame_infos(SegmentRef {
            episode,
            start: 1,
            length: 5,
        })?;
        let steps: Vec<usize> = infos.iter().map(|info| info.step).collect();
        assert_eq!(steps, [2, 5]);
        assert_eq!(infos[0], frame(2).info());
        assert_eq!(store.camera_frame(episode, 5)?, Some(frame(5)));
        assert_eq!(store.camera_frame(episode, 1)?, None);
        Ok(())
    }

    #[test]
    fn frame_outside_episode_rejected() -> Result<(), StoreError> {
        let (_folder, mut store, episode) = store_with_episode(3)?;

        let error = store
            .insert_camera_frames(episode, &[frame(1), frame(3)])
            .unwrap_err();
        assert!(error.to_string().contains("has 3 steps"), "{error}");
        let everything = SegmentRef {
            episode,
            start: 0,
            length: 3,
        };
        assert!(store.camera_frame_infos(everything)?.is_empty());
        assert!(store.camera_frame(episode, 3).is_err());
        Ok(())
    }

    #[test]
    fn duplicate_step_stores_nothing() -> Result<(), StoreError> {
        let (_folder, mut store, episode) = store_with_episode(3)?;

        assert!(
            store
                .insert_camera_frames(episode, &[frame(1), frame(1)])
                .is_err()
        );
        assert_eq!(store.camera_frame(episode, 1)?, None);
        Ok(())
    }
}
