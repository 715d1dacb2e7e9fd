//! Builders for dataset NPZ files that the integration tests write themselves.

#![allow(dead_code)] // Each test crate uses a different part of these helpers.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::PathBuf;

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use ndarray_npy::NpzWriter;

/// One array of an NPZ file, with its numpy dtype.
#[derive(Clone, Debug)]
pub enum Field {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    Bool(ArrayD<bool>),
    I64(ArrayD<i64>),
}

impl From<Array1<f32>> for Field {
    fn from(array: Array1<f32>) -> Self {
        Field::F32(array.into_dyn())
    }
}

impl From<Array2<f32>> for Field {
    fn from(array: Array2<f32>) -> Self {
        Field::F32(array.into_dyn())
    }
}

impl From<Array1<f64>> for Field {
    fn from(array: Array1<f64>) -> Self {
        Field::F64(array.into_dyn())
    }
}

impl From<Array2<f64>> for Field {
    fn from(array: Array2<f64>) -> Self {
        Field::F64(array.into_dyn())
    }
}

impl From<Array1<bool>> for Field {
    fn from(array: Array1<bool>) -> Self {
        Field::Bool(array.into_dyn())
    }
}

impl From<Array1<i64>> for Field {
    fn from(array: Array1<i64>) -> Self {
        Field::I64(array.into_dyn())
    }
}

/// The named arrays of a dataset file, in the order they are written.
#[derive(Clone, Debug, Default)]
pub struct NpzFixture {
    fields: Vec<(String, Field)>,
}

impl NpzFixture {
    /// Builds a valid dataset with all nine layout fields: episodes of the given lengths,
    /// each cut by its time limit, with the given per-step rewards. Observations encode the
    /// global step so that tests can tell rows apart.
    pub fn valid(episode_lengths: &[usize], rewards: &[f32]) -> Self {
        let step_count: usize = episode_lengths.iter().sum();
        assert_eq!(rewards.len(), step_count, "one reward per step");
        let observation_dim = 3;
        let action_dim = 2;

        let mut episode_ids = Vec::with_capacity(step_count);
        let mut timesteps = Vec::with_capacity(step_count);
        let mut timeouts = Vec::with_capacity(step_count);
        for (episode, &len) in episode_lengths.iter().enumerate() {
            for offset in 0..len {
                episode_ids.push(episode as i64);
                timesteps.push(offset as i64);
                timeouts.push(offset + 1 == len);
            }
        }

        let observations =
            Array2::from_shape_fn((step_count, observation_dim), |(s, d)| (s * 10 + d) as f32);
        let next_observations = observations.mapv(|v| v + 10.0);
        let actions = Array2::from_shape_fn((step_count, action_dim), |(s, d)| {
            ((s + d) % 3) as f32 / 2.0 - 0.5
        });

        let mut fixture = Self::default();
        fixture.set("observations", observations);
        fixture.set("actions", actions);
        fixture.set("next_observations", next_observations);
        fixture.set("rewards", Array1::from(rewards.to_vec()));
        fixture.set("terminals", Array1::from_elem(step_count, false));
        fixture.set("timeouts", Array1::from(timeouts));
        fixture.set("success", Array1::from_elem(step_count, false));
        fixture.set("episode_ids", Array1::from(episode_ids));
        fixture.set("timesteps", Array1::from(timesteps));
        fixture
    }

    /// Adds a field, or replaces the field of that name in place.
    pub fn set(&mut self, name: &str, field: impl Into<Field>) -> &mut Self {
        let field = field.into();
        match self
            .fields
            .iter_mut()
            .find(|(existing, _)| existing == name)
        {
            Some(entry) => entry.1 = field,
            None => self.fields.push((name.to_owned(), field)),
        }
        self
    }

    /// Removes a field.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.fields.retain(|(existing, _)| existing != name);
        self
    }

    /// Returns a copy of a 1-D bool field, for tests that change single flags.
    pub fn bool_field(&self, name: &str) -> Array1<bool> {
        match self.field(name) {
            Field::Bool(array) => array.clone().into_dimensionality().expect("1-D bool field"),
            other => panic!("{name} is not a bool field: {other:?}"),
        }
    }

    /// Returns a copy of a 2-D float32 field.
    pub fn f32_matrix(&self, name: &str) -> Array2<f32> {
        match self.field(name) {
            Field::F32(array) => array.clone().into_dimensionality().expect("2-D f32 field"),
            other => panic!("{name} is not a float32 field: {other:?}"),
        }
    }

    fn field(&self, name: &str) -> &Field {
        &self
            .fields
            .iter()
            .find(|(existing, _)| existing == name)
            .unwrap_or_else(|| panic!("fixture has no field {name}"))
            .1
    }

    /// Writes the fields as a compressed NPZ archive (the format of `numpy.savez_compressed`)
    /// and returns the path.
    pub fn write(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = temp_path(name);
        let mut npz = NpzWriter::new_compressed(BufWriter::new(File::create(&path)?));
        for (field_name, field) in &self.fields {
            match field {
                Field::F32(array) => npz.add_array(field_name.as_str(), array)?,
                Field::F64(array) => npz.add_array(field_name.as_str(), array)?,
                Field::Bool(array) => npz.add_array(field_name.as_str(), array)?,
                Field::I64(array) => npz.add_array(field_name.as_str(), array)?,
            }
        }
        npz.finish()?;
        Ok(path)
    }
}

/// Returns a path in this test target's temporary folder. Each test passes its own file
/// name, so tests running in parallel never share a file.
pub fn temp_path(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clarify-tests");
    fs::create_dir_all(&folder).expect("create the test folder");
    folder.join(name)
}

/// Returns an empty array of the given shape, for zero-step files.
pub fn empty_f32(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::zeros(IxDyn(shape))
}
