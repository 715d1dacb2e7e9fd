//! Store fixtures of the `clarify node` tests: a dataset of a few episodes and stored
//! queries on it, written through the store API.

#![allow(dead_code)] // Each test crate uses a different part of these helpers.

use std::path::Path;

use clarify::EpisodeEnd;
use clarify::store::{
    ContentHash, DatasetId, DatasetMeta, EpisodeArrays, EpisodeId, NewQuery, QueryId, SegmentRef,
    Store, unix_secs_now,
};
use ndarray::{Array1, Array2};

/// Observation channels of the fixture dataset.
pub const OBSERVATION_DIM: usize = 3;
/// Action channels of the fixture dataset.
pub const ACTION_DIM: usize = 2;
/// Name of the fixture dataset.
pub const DATASET_NAME: &str = "fixture";

/// Creates a dataset named [`DATASET_NAME`] with `episodes` episodes of `steps` steps. The
/// observation of global step `g` is `[g, g + 0.25, g + 0.5]` and its action `[-g, g]`.
pub fn create_dataset(
    store: &mut Store,
    episodes: usize,
    steps: usize,
) -> (DatasetId, Vec<EpisodeId>) {
    let meta = DatasetMeta {
        name: DATASET_NAME.to_owned(),
        source_path: "fixture.npz".into(),
        content_hash: ContentHash::of_bytes(format!("fixture {episodes} {steps}").as_bytes()),
        sidecar_json: None,
        imported_at_unix_secs: unix_secs_now(),
    };
    let dataset = store
        .create_recording(&meta, OBSERVATION_DIM, ACTION_DIM)
        .expect("create the fixture dataset");
    let mut ids = Vec::new();
    for episode in 0..episodes {
        let first = (episode * steps) as f32;
        let observations = Array2::from_shape_fn((steps, OBSERVATION_DIM), |(step, channel)| {
            first + step as f32 + 0.25 * channel as f32
        });
        let actions = Array2::from_shape_fn((steps, ACTION_DIM), |(step, channel)| {
            let global = first + step as f32;
            if channel == 0 { -global } else { global }
        });
        let arrays = EpisodeArrays {
            next_observations: observations.clone(),
            observations,
            actions,
            rewards: Array1::zeros(steps),
        };
        let id = store
            .append_episode(dataset, &arrays, EpisodeEnd::TimedOut)
            .expect("append a fixture episode");
        ids.push(id);
    }
    (dataset, ids)
}

/// Stores a query comparing the segments `[0, length)` of episodes `left` and `right`,
/// expiring at `expires_at` (Unix seconds, `None` for never).
pub fn insert_query(
    store: &mut Store,
    left: EpisodeId,
    right: EpisodeId,
    start: usize,
    length: usize,
    expires_at: Option<f64>,
) -> QueryId {
    let segment = |episode| SegmentRef {
        episode,
        start,
        length,
    };
    store
        .insert_query(&NewQuery {
            left: segment(left),
            right: segment(right),
            selector: "random".to_owned(),
            encoder_version: None,
            created_at_unix_secs: unix_secs_now(),
            expires_at_unix_secs: expires_at,
        })
        .expect("insert a fixture query")
}

/// Writes a parameter file for node `clarify_node` with the given `ros__parameters` body
/// (YAML, indented by four spaces) and returns its path.
pub fn write_params(folder: &Path, body: &str) -> std::path::PathBuf {
    let path = folder.join("params.yaml");
    let text = format!("clarify_node:\n  ros__parameters:\n{body}");
    std::fs::write(&path, text).expect("write the parameter file");
    path
}
