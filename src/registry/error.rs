use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Failures of the model registry: manifests, installation, the current pointer.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("cannot read manifest {path}: {message}")]
    ManifestParse { path: String, message: String },

    #[error("manifest {path}: {field} is {value}, expected {expected}")]
    Manifest {
        path: String,
        field: String,
        value: String,
        expected: String,
    },

    #[error(
        "model set {version} does not match {origin}: manifest field {field} is {found}, \
         expected {expected}"
    )]
    Mismatch {
        version: String,
        field: String,
        expected: String,
        found: String,
        /// Where the expected value comes from ("the robot", "the dataset", ...).
        origin: String,
    },

    #[error("model set {version}: {file} has SHA-256 {found}, but the manifest lists {expected}")]
    FileHash {
        version: String,
        file: String,
        found: String,
        expected: String,
    },

    #[error("invalid model version name {version:?}: expected {expected}")]
    InvalidVersion {
        version: String,
        expected: &'static str,
    },

    #[error("model set {version}: the manifest says version {found:?}; the two must be equal")]
    VersionMismatch { version: String, found: String },

    #[error("model version {version} is already installed in {root}; pick a new version name")]
    AlreadyInstalled { version: String, root: PathBuf },

    #[error("model version {version} is not installed in {root} (installed: {installed})")]
    NotInstalled {
        version: String,
        root: PathBuf,
        installed: String,
    },

    #[error("no model version is active in {root}: install one and activate it")]
    NoCurrent { root: PathBuf },

    #[error("cannot roll back in {root}: no previous version is recorded")]
    NoPrevious { root: PathBuf },

    #[error("invalid registry setting keep = 0: keep at least 1 version")]
    InvalidKeep,

    #[error("current pointer {path} is unreadable: {message}")]
    Pointer { path: PathBuf, message: String },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RegistryError {
    /// Returns whether the error comes from invalid input (a manifest, a name, a mismatch) rather
    /// than from the file system.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> RegistryError {
    let path = path.into();
    move |source| RegistryError::Io {
        action,
        path,
        source,
    }
}
