//! The store writer: one thread that owns the store and appends the episodes it receives
//! through a bounded channel.

use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use tracing::{debug, error};

use super::RecorderError;
use super::core::{EpisodeSink, RecordedEpisode};
use super::counters::{Counters, StepDropReason};
use crate::media::CameraCounters;
use crate::store::{DatasetId, Store};

/// The sending end of the writer's channel. Never blocks: a full channel drops the
/// episode.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    sender: Sender<RecordedEpisode>,
}

impl EpisodeSink for ChannelSink {
    fn submit(&mut self, episode: RecordedEpisode) -> Result<(), StepDropReason> {
        self.sender.try_send(episode).map_err(|error| match error {
            TrySendError::Full(_) => StepDropReason::WriterFull,
            TrySendError::Disconnected(_) => StepDropReason::StoreFailed,
        })
    }
}

/// The writer thread. It stops when every [`ChannelSink`] is dropped and the channel is
/// empty.
#[derive(Debug)]
pub struct StoreWriter {
    thread: JoinHandle<Store>,
    dataset: DatasetId,
}

impl StoreWriter {
    /// Starts a writer that appends to `dataset` in `store`, with a channel of `capacity`
    /// episodes.
    pub fn spawn(
        store: Store,
        dataset: DatasetId,
        capacity: usize,
        counters: Arc<Counters>,
    ) -> Result<(ChannelSink, Self), RecorderError> {
        Self::spawn_with_camera(store, dataset, capacity, counters, None)
    }

    /// Starts a writer like [`StoreWriter::spawn`] that also counts the camera frames it
    /// writes or loses in `camera`.
    pub fn spawn_with_camera(
        store: Store,
        dataset: DatasetId,
        capacity: usize,
        counters: Arc<Counters>,
        camera: Option<Arc<CameraCounters>>,
    ) -> Result<(ChannelSink, Self), RecorderError> {
        let (sender, receiver) = bounded(capacity.max(1));
        let thread = thread::Builder::new()
            .name("recorder-store".to_owned())
            .spawn(move || write_episodes(store, dataset, &receiver, &counters, camera.as_deref()))
            .map_err(|source| RecorderError::Thread {
                name: "store writer",
                source,
            })?;
        Ok((ChannelSink { sender }, Self { thread, dataset }))
    }

    /// Returns the dataset the writer appends to.
    pub fn dataset(&self) -> DatasetId {
        self.dataset
    }

    /// Waits until the writer has written every queued episode and returns the store.
    /// Every sink must be dropped first, or this waits forever.
    pub fn join(self) -> Result<Store, RecorderError> {
        self.thread
            .join()
            .map_err(|_| RecorderError::Panicked("store writer"))
    }
}

fn write_episodes(
    mut store: Store,
    dataset: DatasetId,
    receiver: &Receiver<RecordedEpisode>,
    counters: &Counters,
    camera: Option<&CameraCounters>,
) -> Store {
    for episode in receiver.iter() {
        let steps = episode.steps();
        let frames = episode.frames.len();
        match store.append_episode(dataset, &episode.arrays, episode.end) {
            Ok(id) => {
                counters.episode_written(steps);
                debug!(episode = id.get(), steps, "recorded episode written");
                // The frames follow in a second transaction: a failure there loses the
                // frames but keeps the episode's steps.
                if frames > 0 {
                    let outcome = store.insert_camera_frames(id, &episode.frames);
                    match (&outcome, camera) {
                        (Ok(()), Some(camera)) => camera.written(frames),
                        (Err(_), Some(camera)) => camera.lost(frames),
                        _ => {}
                    }
                    if let Err(error) = outcome {
                        error!(%error, episode = id.get(), frames, "failed to write an episode's camera frames; they are lost");
                    }
                }
            }
            Err(error) => {
                counters.steps_dropped(StepDropReason::StoreFailed, steps);
                if let Some(camera) = camera {
                    camera.lost(frames);
                }
                error!(%error, steps, "failed to write a recorded episode; it is lost");
            }
        }
    }
    store
}
