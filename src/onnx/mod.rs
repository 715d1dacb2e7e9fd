//! ONNX export: protobuf messages, a graph builder, layer helpers and an MLP exporter.
//!
//! The messages in [`proto`] are derived with `prost`, so no `protoc` or build script is needed.
//! Models import one opset of the default ONNX domain ([`DEFAULT_OPSET`] unless an operator
//! needs a newer one) and use f32 values with i64 shape and index operands. This module only
//! writes models, and [`crate::infer`] loads and runs them.

mod error;
mod graph;
mod layers;
mod mlp;
pub mod proto;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

pub use error::ExportError;
pub use graph::{
    Attribute, AttributeValue, BATCH_DIM, Constant, DEFAULT_OPSET, Dim, ElementType, GraphBuilder,
    ModelInfo, SUPPORTED_OPSETS, TensorData, Value, ir_version_for_opset,
};
pub use mlp::{Activation, DenseLayer, Mlp, MlpExportOptions, Standardization};
pub use proto::ModelProto;

/// Encodes `model` in the protobuf wire format of an `.onnx` file.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes `model` to `path` atomically: the bytes go to a temporary file in the same directory,
/// which is flushed to disk and then renamed over `path`. A reader sees the old file or the
/// complete new one, never a partial model.
pub fn write_model(model: &ModelProto, path: &Path) -> Result<(), ExportError> {
    let write_error = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = temporary_path(path).map_err(write_error)?;

    let result = write_and_sync(&temporary, &encode_model(model))
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(source) = result {
        // The temporary file is useless after a failure, and the write error is the one to report.
        let _ = fs::remove_file(&temporary);
        return Err(write_error(source));
    }
    Ok(())
}

static TEMPORARY_FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temporary_path(path: &Path) -> std::io::Result<PathBuf> {
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    // Process id plus a per-process counter keep concurrent writers from sharing a file.
    let sequence = TEMPORARY_FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
    temporary_name.push(format!(".tmp-{}-{sequence}", std::process::id()));
    Ok(path.with_file_name(temporary_name))
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
