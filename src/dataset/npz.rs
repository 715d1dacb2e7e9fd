//! Reading dataset fields from an NPZ archive, with dtype and dimension checks.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use ndarray::{ArrayBase, ArrayD, Dimension, Ix1, Ix2, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpzError, ReadableElement};

use super::DatasetArrays;
use super::error::{DatasetError, REQUIRED_FIELDS};

/// Reads the required and optional fields of a dataset file. Shapes across fields and the
/// values themselves are checked later, by `Dataset::from_arrays`.
pub(super) fn read_arrays(path: &Path) -> Result<DatasetArrays, DatasetError> {
    // Opening a folder succeeds on Linux and fails later with an unhelpful read error.
    if path.is_dir() {
        return Err(DatasetError::Open {
            path: path.to_owned(),
            source: io::Error::from(io::ErrorKind::IsADirectory),
        });
    }
    let file = File::open(path).map_err(|source| DatasetError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = FieldReader::open(path, BufReader::new(file))?;

    for field in REQUIRED_FIELDS {
        reader.require(field)?;
    }

    Ok(DatasetArrays {
        observations: reader.read::<f32, Ix2>("observations", "float32")?,
        actions: reader.read::<f32, Ix2>("actions", "float32")?,
        next_observations: reader.read::<f32, Ix2>("next_observations", "float32")?,
        rewards: reader.read::<f32, Ix1>("rewards", "float32")?,
        terminals: reader.read::<bool, Ix1>("terminals", "bool")?,
        timeouts: reader.read::<bool, Ix1>("timeouts", "bool")?,
        success: reader.read_optional::<bool, Ix1>("success", "bool")?,
        episode_ids: reader.read_optional::<i64, Ix1>("episode_ids", "int64")?,
        timesteps: reader.read_optional::<i64, Ix1>("timesteps", "int64")?,
    })
}

struct FieldReader<'a, R: Read + Seek> {
    path: &'a Path,
    npz: NpzReader<R>,
    names: Vec<String>,
}

impl<'a, R: Read + Seek> FieldReader<'a, R> {
    fn open(path: &'a Path, reader: R) -> Result<Self, DatasetError> {
        let archive_error = |source| DatasetError::Archive {
            path: path.to_owned(),
            source,
        };
        let mut npz = NpzReader::new(reader).map_err(archive_error)?;
        let names = npz.names().map_err(archive_error)?;
        Ok(Self { path, npz, names })
    }

    fn has(&self, field: &str) -> bool {
        self.names.iter().any(|name| name == field)
    }

    fn require(&self, field: &'static str) -> Result<(), DatasetError> {
        if self.has(field) {
            return Ok(());
        }
        let present = if self.names.is_empty() {
            "none".to_owned()
        } else {
            self.names.join(", ")
        };
        Err(DatasetError::MissingField {
            path: self.path.to_owned(),
            field,
            present,
        })
    }

    fn read_optional<T: ReadableElement, D: Dimension>(
        &mut self,
        field: &'static str,
        dtype: &'static str,
    ) -> Result<Option<ArrayBase<OwnedRepr<T>, D>>, DatasetError> {
        if !self.has(field) {
            return Ok(None);
        }
        self.read(field, dtype).map(Some)
    }

    /// Reads a field with element type `T` (numpy dtype `dtype`) and `D::NDIM` dimensions.
    fn read<T: ReadableElement, D: Dimension>(
        &mut self,
        field: &'static str,
        dtype: &'static str,
    ) -> Result<ArrayBase<OwnedRepr<T>, D>, DatasetError> {
        // Reading with a dynamic dimension first lets a wrong dimension count be reported
        // with the shape found, which the fixed-dimension reader does not return.
        let array: ArrayD<T> = self.npz.by_name(field).map_err(|error| match error {
            ReadNpzError::Npy(ReadNpyError::WrongDescriptor(descriptor)) => DatasetError::Dtype {
                path: self.path.to_owned(),
                field,
                found: numpy_dtype_name(&descriptor.to_string()),
                expected: dtype,
            },
            source => DatasetError::ReadField {
                path: self.path.to_owned(),
                field,
                source,
            },
        })?;

        let found = array.shape().to_vec();
        array
            .into_dimensionality::<D>()
            .map_err(|_| DatasetError::Shape {
                path: self.path.to_owned(),
                field,
                found,
                expected: match D::NDIM {
                    Some(1) => "[N] (one dimension, one value per step)".to_owned(),
                    Some(2) => "[N, dim] (two dimensions, one row per step)".to_owned(),
                    other => format!("{other:?} dimensions"),
                },
            })
    }
}

/// Converts a numpy type descriptor such as `'<f8'` to the dtype name numpy prints
/// (`float64`). Descriptors of other kinds, such as structured types, are returned as they
/// are.
fn numpy_dtype_name(descriptor: &str) -> String {
    let code = descriptor.trim_matches('\'');
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = code.chars();
    let kind = chars.next();
    let bits = chars.as_str().parse::<u32>().map(|bytes| bytes * 8);

    match (kind, bits) {
        (Some('b'), Ok(8)) => "bool".to_owned(),
        (Some('f'), Ok(bits)) => format!("float{bits}"),
        (Some('i'), Ok(bits)) => format!("int{bits}"),
        (Some('u'), Ok(bits)) => format!("uint{bits}"),
        (Some('c'), Ok(bits)) => format!("complex{bits}"),
        _ => descriptor.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::numpy_dtype_name;

    #[test]
    fn dtype_names_match_numpy() {
        let cases = [
            ("'<f4'", "float32"),
            ("'<f8'", "float64"),
            ("'>i8'", "int64"),
            ("'|u1'", "uint8"),
            ("'|b1'", "bool"),
            ("'<c16'", "complex128"),
            ("'<U5'", "'<U5'"),
            ("[('a', '<f4')]", "[('a', '<f4')]"),
        ];
        for (descriptor, expected) in cases {
            assert_eq!(numpy_dtype_name(descriptor), expected, "{descriptor}");
        }
    }
}
