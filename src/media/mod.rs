//! Media of stored segments for the operator console: rendered clips of simulator data
//! and camera frames of real robots.
//!
//! [`MediaService::segment_media`] returns what a segment has: a clip (datasets with
//! simulator state, rendered in the background by [`ClipCache`]), camera frames (steps
//! recorded with a camera topic, see [`CameraSource`]), or nothing, with the reason.
//! [`MediaService::clip_bytes`] and [`MediaService::frame_bytes`] return the images with
//! their content types. Nothing here depends on a web framework, so a server wraps these
//! calls in its own handlers.

mod camera;
mod clip;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use thiserror::Error;

pub use camera::{
    CameraCounterSnapshot, CameraCounters, CameraMessageType, CameraSource, DEFAULT_JPEG_QUALITY,
    DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_WIDTH, EncodedFrame, FRAME_DROP_REASONS, FrameError,
    check_compressed, encode_image,
};
pub use clip::{ClipCache, ClipRequest, ClipSettings, ClipState, STATE_FIELDS, check_renderable};

use crate::store::{EpisodeId, FrameInfo, SegmentRef, Store, StoreError};

/// Errors of the media service. A segment without media is not an error but
/// [`SegmentMedia::None`].
#[derive(Debug, Error)]
pub enum MediaError {
    /// The store failed, or the episode or segment does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is invalid.
    #[error("invalid media setting {field} = {value}: expected {expected}")]
    Config {
        /// The setting's name.
        field: String,
        /// The rejected value.
        value: String,
        /// The accepted values.
        expected: String,
    },
    /// A file operation failed.
    #[error("failed to {operation} {}", path.display())]
    Io {
        /// The failed operation.
        operation: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A thread could not be started.
    #[error("failed to start the {name} thread")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

impl MediaError {
    /// Returns whether the caller asked for something that does not exist or is invalid
    /// (an unknown episode, a segment outside its episode), as opposed to a failure of the
    /// store or the file system.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            MediaError::Store(error) => error.is_invalid_input(),
            MediaError::Config { .. } => true,
            MediaError::Io { .. } | MediaError::Thread { .. } => false,
        }
    }
}

/// State of a segment's clip, as JSON writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipStateWord {
    /// The clip can be fetched.
    Ready,
    /// The clip is queued or rendering; ask again later.
    Pending,
    /// The dataset cannot be rendered.
    Unavailable,
    /// The render failed and will not be retried.
    Failed,
}

/// One camera frame of a segment, without its bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameEntry {
    /// Step within the episode.
    pub step: usize,
    /// Capture time in Unix seconds.
    pub stamp_unix_secs: f64,
    /// MIME type of the image.
    pub content_type: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl From<&FrameInfo> for FrameEntry {
    fn from(info: &FrameInfo) -> Self {
        Self {
            step: info.step,
            stamp_unix_secs: info.stamp_unix_secs,
            content_type: info.format.content_type(),
            width: info.width,
            height: info.height,
        }
    }
}

/// Media of a segment, serialized with a `kind` tag:
/// `{"kind":"clip","state":"pending"}`, `{"kind":"frames","count":3,"frames":[...]}` or
/// `{"kind":"none","reason":"..."}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SegmentMedia {
    /// A rendered clip (animated WebP) of a simulator dataset.
    Clip {
        /// State of the clip.
        state: ClipStateWord,
        /// Reason the clip is unavailable or failed, absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Camera frames of the segment's steps. Steps without a frame show the frame of the
    /// nearest earlier step.
    Frames {
        /// Number of frames.
        count: usize,
        /// The frames in step order.
        frames: Vec<FrameEntry>,
    },
    /// The segment has no media.
    None {
        /// Why.
        reason: String,
    },
}

/// Bytes of an image or clip with their MIME type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaBytes {
    /// MIME type, for the HTTP `Content-Type` header.
    pub content_type: &'static str,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// MIME type of the rendered clips.
pub const CLIP_CONTENT_TYPE: &str = "image/webp";

/// Media of stored segments; see the module documentation.
///
/// The service opens its own store connection, so it reads while the node's recorder
/// writes. Its methods take `&self` and may be called from several threads.
pub struct MediaService {
    store: Mutex<Store>,
    clips: Option<ClipCache>,
}

impl MediaService {
    /// Opens the store at `store_path` and, when `clips.enabled` is set, starts the clip
    /// cache.
    pub fn open(store_path: &Path, clips: &ClipSettings) -> Result<Self, MediaError> {
        let store = Store::open(store_path)?;
        let clips = if clips.enabled {
            Some(ClipCache::new(clips.clone())?)
        } else {
            None
        };
        Ok(Self {
            store: Mutex::new(store),
            clips,
        })
    }

    /// Returns the clip cache, when clips are configured.
    pub fn clips(&self) -> Option<&ClipCache> {
        self.clips.as_ref()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while the lock was held cannot leave the connection inconsistent: every
        // write is its own transaction.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns what the segment of `length` steps from `start` of the episode can show,
    /// and queues a clip render when one is needed.
    ///
    /// Camera frames come first: a segment with frames returns them. Otherwise a dataset
    /// file with simulator state returns its clip's state.
    ///
    /// Fails when the episode does not exist, or the segment is empty or ends after the
    /// episode's last step.
    pub fn segment_media(
        &self,
        episode_id: EpisodeId,
        start: usize,
        length: usize,
    ) -> Result<SegmentMedia, MediaError> {
        let segment = SegmentRef {
            episode: episode_id,
            start,
            length,
        };
        let (frames, request) = {
            let store = self.store();
            let frames = store.camera_frame_infos(segment)?;
            (frames, clip_request(&store, segment)?)
        };
        if !frames.is_empty() {
            return Ok(SegmentMedia::Frames {
                count: frames.len(),
                frames: frames.iter().map(FrameEntry::from).collect(),
            });
        }
        let Some(request) = request else {
            return Ok(SegmentMedia::None {
                reason: format!(
                    "{episode_id} has no camera frames in steps {start} to {}, and its \
                     dataset is a recording, which cannot be rendered",
                    start + length - 1
                ),
            });
        };
        let Some(clips) = &self.clips else {
            return Ok(SegmentMedia::None {
                reason: "clip rendering is off (clips.enabled is false)".to_owned(),
            });
        };
        let media = match clips.request(&request) {
            ClipState::Ready(_) => clip(ClipStateWord::Ready, None),
            ClipState::Pending => clip(ClipStateWord::Pending, None),
            ClipState::Unavailable(reason) => clip(ClipStateWord::Unavailable, Some(reason)),
            ClipState::Failed(reason) => clip(ClipStateWord::Failed, Some(reason)),
        };
        Ok(media)
    }

    /// Returns the rendered clip of a segment, or `None` when it is not rendered (yet).
    /// Starts no render.
    pub fn clip_bytes(
        &self,
        episode_id: EpisodeId,
        start: usize,
        length: usize,
    ) -> Result<Option<MediaBytes>, MediaError> {
        let segment = SegmentRef {
            episode: episode_id,
            start,
            length,
        };
        let Some(clips) = &self.clips else {
            return Ok(None);
        };
        let request = {
            let store = self.store();
            store.camera_frame_infos(segment)?;
            clip_request(&store, segment)?
        };
        let Some(request) = request else {
            return Ok(None);
        };
        match clips.state(&request) {
            ClipState::Ready(path) => Ok(Some(MediaBytes {
                content_type: CLIP_CONTENT_TYPE,
                data: clip::read_clip(&path)?,
            })),
            _ => Ok(None),
        }
    }

    /// Returns the camera frames of a segment's steps, in step order.
    pub fn frames(
        &self,
        episode_id: EpisodeId,
        start: usize,
        length: usize,
    ) -> Result<Vec<FrameEntry>, MediaError> {
        let infos = self.store().camera_frame_infos(SegmentRef {
            episode: episode_id,
            start,
            length,
        })?;
        Ok(infos.iter().map(FrameEntry::from).collect())
    }

    /// Returns the camera frame of one step, or `None` when the step has none.
    ///
    /// Fails when the episode does not exist or has no such step.
    pub fn frame_bytes(
        &self,
        episode_id: EpisodeId,
        step: usize,
    ) -> Result<Option<MediaBytes>, MediaError> {
        let frame = self.store().camera_frame(episode_id, step)?;
        Ok(frame.map(|frame| MediaBytes {
            content_type: frame.format.content_type(),
            data: frame.data,
        }))
    }
}

fn clip(state: ClipStateWord, reason: Option<String>) -> SegmentMedia {
    SegmentMedia::Clip { state, reason }
}

/// Returns the render request of a segment of a dataset file, or `None` when the dataset
/// is a live recording (its source path names topics, not a file).
fn clip_request(store: &Store, segment: SegmentRef) -> Result<Option<ClipRequest>, MediaError> {
    let episode = store.episode(segment.episode)?;
    let dataset = store.dataset(episode.dataset)?;
    let source = &dataset.meta.source_path;
    if source.to_string_lossy().starts_with("ros2:") {
        return Ok(None);
    }
    Ok(Some(ClipRequest {
        dataset_path: source.clone(),
        dataset_sha256: dataset.meta.content_hash.to_hex(),
        episode_index: episode.index,
        start: segment.start,
        length: segment.length,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_is_shareable_across_threads() {
        // A web server keeps the service in shared state that its handler threads read.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MediaService>();
    }
}
