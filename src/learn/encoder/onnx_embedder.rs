//! [`OnnxEncoder`]: the exported encoder run by ONNX Runtime, as the query selector's
//! [`Embedder`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ndarray::{Array2, Array3, Axis};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::batch::draw_index;
use super::config::{EncoderConfig, TimeEmbedding};
use super::encoder::check_timesteps;
use super::error::EncoderError;
use super::export::encoder_signature;
use crate::dataset::Dataset;
use crate::infer::{InputArray, Model, Runtime};
use crate::select::{DatasetSegment, Embedder};

/// An exported encoder model with the dataset whose segments it embeds.
///
/// Each segment's states are read from the dataset and passed raw, because the model
/// normalises them itself. Timesteps are the segment's steps within its episode, which is
/// what the dataset's `timesteps` field contains when present (the dataset checks that it
/// counts 0, 1, 2, ... in every episode). With `time_embedding = random` each segment gets
/// consecutive timesteps from a start drawn uniformly in 0..=max_timestep − H instead, from
/// a generator seeded at construction.
pub struct OnnxEncoder<'a> {
    model: Model,
    dataset: &'a Dataset,
    time_embedding: TimeEmbedding,
    max_timestep: usize,
    rng: Xoshiro256PlusPlus,
}

impl fmt::Debug for OnnxEncoder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxEncoder")
            .field("model", &self.model)
            .field("dataset", &self.dataset.path())
            .field("time_embedding", &self.time_embedding)
            .field("max_timestep", &self.max_timestep)
            .finish_non_exhaustive()
    }
}

impl<'a> OnnxEncoder<'a> {
    /// Wraps `model`, loaded with [`encoder_signature`], for segments of `dataset`.
    /// `config` must be the configuration the model was exported with; its
    /// `time_embedding` and `max_timestep` settings choose the timesteps, and `seed` seeds
    /// the random ones.
    pub fn new(
        model: Model,
        dataset: &'a Dataset,
        config: &EncoderConfig,
        seed: u64,
    ) -> Result<Self, EncoderError> {
        config.validate()?;
        let Some(states) = model.inputs().first() else {
            return Err(EncoderError::Shape {
                what: "encoder model inputs",
                found: Vec::new(),
                expected: "states and timesteps".to_owned(),
            });
        };
        if let Some(crate::infer::TensorDim::Fixed(width)) = states.dims.last()
            && *width != dataset.observation_dim()
        {
            return Err(EncoderError::Shape {
                what: "dataset observations",
                found: vec![dataset.step_count(), dataset.observation_dim()],
                expected: format!("[steps, {width}], the width of the encoder model"),
            });
        }
        Ok(Self {
            model,
            dataset,
            time_embedding: config.time_embedding,
            max_timestep: config.max_timestep,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        })
    }

    /// Loads the encoder model at `path` with `runtime` and wraps it like
    /// [`OnnxEncoder::new`].
    pub fn load(
        runtime: &Runtime,
        path: &Path,
        dataset: &'a Dataset,
        config: &EncoderConfig,
        seed: u64,
    ) -> Result<Self, EncoderError> {
        let model = runtime.load_model(path, &encoder_signature())?;
        Self::new(model, dataset, config, seed)
    }

    /// Embeds segments of one length, `[segments.len(), z_dim]`.
    fn embed_same_length(
        &mut self,
        segments: &[DatasetSegment],
    ) -> Result<Array2<f32>, EncoderError> {
        let steps = segments[0].length;
        let observations = self.dataset.observations();
        let observation_dim = observations.ncols();
        let episodes = self.dataset.episodes();
        let mut states = Array3::<f32>::zeros((segments.len(), steps, observation_dim));
        let mut timesteps = Array2::<i64>::zeros((segments.len(), steps));
        for (index, segment) in segments.iter().enumerate() {
            let global_start = episodes[segment.episode].start + segment.start;
            states
                .index_axis_mut(Axis(0), index)
                .assign(&observations.slice_axis(
                    Axis(0),
                    ndarray::Slice::from(global_start..global_start + steps),
                ));
            let first = match self.time_embedding {
                TimeEmbedding::Random => {
                    let starts =
                        self.max_timestep
                            .checked_sub(steps)
                            .ok_or(EncoderError::Timestep {
                                found: steps as i64 - 1,
                                max_timestep: self.max_timestep,
                                needed: steps as i64,
                            })?;
                    draw_index(&mut self.rng, starts + 1)
                }
                TimeEmbedding::True | TimeEmbedding::None => segment.start,
            };
            for (offset, timestep) in timesteps.row_mut(index).iter_mut().enumerate() {
                *timestep = (first + offset) as i64;
            }
        }
        if self.time_embedding != TimeEmbedding::None {
            check_timesteps(timesteps.iter().copied(), self.max_timestep)?;
        }

        let inputs = [
            InputArray::F32(states.view().into_dyn()),
            InputArray::I64(timesteps.view().into_dyn()),
        ];
        let output = self.model.run_mixed(&inputs)?.remove(0);
        let found = output.shape().to_vec();
        output
            .into_dimensionality::<ndarray::Ix2>()
            .ok()
            .filter(|z| z.nrows() == segments.len())
            .ok_or(EncoderError::OutputShape {
                segments: segments.len(),
                found,
            })
    }
}

impl Embedder for OnnxEncoder<'_> {
    type Error = EncoderError;

    /// Embeds `segments` in input order. Segments of different lengths run as separate
    /// batches.
    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, segment) in segments.iter().enumerate() {
            segment.validate(self.dataset.episodes())?;
            by_length.entry(segment.length).or_default().push(index);
        }
        let mut embeddings = vec![Vec::new(); segments.len()];
        for indices in by_length.values() {
            let group: Vec<DatasetSegment> = indices.iter().map(|&i| segments[i]).collect();
            let z = self.embed_same_length(&group)?;
            for (&index, row) in indices.iter().zip(z.rows()) {
                embeddings[index] = row.to_vec();
            }
        }
        Ok(embeddings)
    }
}
