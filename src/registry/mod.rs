//! The model registry: versioned model sets on disk, each a folder `<root>/<version>/` with
//! ONNX files and a [`Manifest`].
//!
//! A set is written into a hidden staging folder inside the root (same file system), checked
//! (manifest fields, file hashes), flushed to disk and renamed into place, so a reader never
//! sees a partly written set. The file `<root>/current` names the active version and the one
//! active before it; it is replaced by a rename, so it always names a complete set. After each
//! install the registry removes the oldest versions beyond the `keep` newest, never the active
//! or the previous one.

mod error;
pub mod manifest;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::RegistryError;
use error::io_error;
pub use manifest::{
    ActionBounds, BATCH_DIM, ComponentVersions, DataProvenance, Expectation, MANIFEST_FILE,
    MANIFEST_FORMAT_VERSION, Manifest, NetworkFile, Networks, Normalization, RobotInterface,
    ShapeDim, TensorShape, check_version_name,
};

/// Name of the pointer file in the registry root.
pub const CURRENT_FILE: &str = "current";

/// Prefix of staging folders and temporary files in the registry root.
const TEMPORARY_PREFIX: &str = ".tmp-";

/// The active version and the one active before it, as stored in `<root>/current`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub version: String,
    #[serde(default)]
    pub previous: Option<String>,
}

/// A model set whose manifest is valid and whose files match their hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSet {
    pub version: String,
    /// The set's folder.
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl ModelSet {
    /// Reads and checks the set in `folder`: the manifest parses and is valid, its version is
    /// `version`, and every listed network file exists with the listed SHA-256.
    pub fn open(folder: &Path, version: &str) -> Result<Self, RegistryError> {
        let manifest_path = folder.join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest_path)
            .map_err(io_error("cannot read manifest", &manifest_path))?;
        let manifest = Manifest::from_json(&text, &manifest_path.display().to_string())?;
        if manifest.version != version {
            return Err(RegistryError::VersionMismatch {
                version: version.to_owned(),
                found: manifest.version,
            });
        }
        for (_, network) in manifest.networks.iter() {
            let path = folder.join(&network.file);
            let found = sha256_file(&path)?;
            if found != network.sha256 {
                return Err(RegistryError::FileHash {
                    version: version.to_owned(),
                    file: network.file.clone(),
                    found,
                    expected: network.sha256.clone(),
                });
            }
        }
        Ok(Self {
            version: version.to_owned(),
            path: folder.to_path_buf(),
            manifest,
        })
    }

    /// Path of the policy ONNX file.
    pub fn policy_path(&self) -> PathBuf {
        self.path.join(&self.manifest.networks.policy.file)
    }
}

/// Returns the SHA-256 of a file as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, RegistryError> {
    let mut file = File::open(path).map_err(io_error("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(io_error("cannot read", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Returns the SHA-256 of `bytes` as lower-case hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder of model versions with an active-version pointer.
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
    keep: usize,
}

impl Registry {
    /// Opens the registry in `root`, creating the folder when missing. Installs keep the
    /// `keep` newest versions (at least 1) plus the active and previous ones.
    pub fn open(root: impl Into<PathBuf>, keep: usize) -> Result<Self, RegistryError> {
        if keep == 0 {
            return Err(RegistryError::InvalidKeep);
        }
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_error("cannot create registry folder", &root))?;
        Ok(Self { root, keep })
    }

    /// Returns the registry folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the installed versions, oldest install first.
    pub fn versions(&self) -> Result<Vec<String>, RegistryError> {
        let mut versions = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(io_error("cannot list", &self.root))?;
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry
                .file_type()
                .map_err(io_error("cannot stat", entry.path()))?
                .is_dir();
            if !is_dir || check_version_name(&name).is_err() {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            versions.push((modified, name));
        }
        versions.sort();
        Ok(versions.into_iter().map(|(_, name)| name).collect())
    }

    /// Returns the folder of `version` (which may not exist).
    pub fn version_path(&self, version: &str) -> PathBuf {
        self.root.join(version)
    }

    /// Reads and checks an installed set.
    pub fn load(&self, version: &str) -> Result<ModelSet, RegistryError> {
        check_name(version)?;
        let folder = self.version_path(version);
        if !folder.is_dir() {
            return Err(self.not_installed(version));
        }
        ModelSet::open(&folder, version)
    }

    /// Reads and checks the active set.
    pub fn load_current(&self) -> Result<ModelSet, RegistryError> {
        let pointer = self.current()?.ok_or_else(|| RegistryError::NoCurrent {
            root: self.root.clone(),
        })?;
        self.load(&pointer.version)
    }

    /// Starts writing `version`: returns a staging folder to fill, which
    /// [`Staging::commit`] moves into place.
    pub fn stage(&self, version: &str) -> Result<Staging, RegistryError> {
        check_name(version)?;
        if self.version_path(version).exists() {
            return Err(RegistryError::AlreadyInstalled {
                version: version.to_owned(),
                root: self.root.clone(),
            });
        }
        let path = self.root.join(temporary_name(version));
        fs::create_dir(&path).map_err(io_error("cannot create staging folder", &path))?;
        Ok(Staging {
            registry: self.clone(),
            version: version.to_owned(),
            path,
            committed: false,
        })
    }

    /// Installs the set in `source` (a manifest and the files it lists) as `version`,
    /// copying it through a staging folder. Other files in `source` are not copied.
    pub fn install_from_dir(
        &self,
        version: &str,
        source: &Path,
    ) -> Result<ModelSet, RegistryError> {
        // Checking the source first gives errors that name the source, not the staging copy.
        ModelSet::open(source, version)?;
        let staging = self.stage(version)?;
        let manifest_source = source.join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest_source)
            .map_err(io_error("cannot read manifest", &manifest_source))?;
        let manifest = Manifest::from_json(&text, &manifest_source.display().to_string())?;
        let mut files = vec![MANIFEST_FILE.to_owned()];
        files.extend(manifest.networks.iter().map(|(_, n)| n.file.clone()));
        for file in files {
            let from = source.join(&file);
            let to = staging.path().join(&file);
            fs::copy(&from, &to).map_err(io_error("cannot copy", &from))?;
        }
        staging.commit()
    }

    /// Returns the active version and the previous one, or `None` before any activation.
    pub fn current(&self) -> Result<Option<Pointer>, RegistryError> {
        let path = self.root.join(CURRENT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("cannot read", &path)(error)),
        };
        let pointer: Pointer =
            serde_json::from_str(&text).map_err(|error| RegistryError::Pointer {
                path: path.clone(),
                message: error.to_string(),
            })?;
        Ok(Some(pointer))
    }

    /// Makes `version` active after checking it; the active version becomes the previous
    /// one. Returns the new pointer.
    pub fn activate(&self, version: &str) -> Result<Pointer, RegistryError> {
        self.load(version)?;
        let previous = self.current()?.map(|p| p.version);
        let pointer = Pointer {
            version: version.to_owned(),
            previous: previous.filter(|p| p != version),
        };
        self.write_pointer(&pointer)?;
        tracing::info!(
            version,
            previous = pointer.previous.as_deref().unwrap_or(""),
            root = %self.root.display(),
            "activated model version"
        );
        Ok(pointer)
    }

    /// Activates `version`, or the previous version when `None`. The version that was
    /// active becomes the previous one, so two rollbacks in a row return to the start.
    pub fn rollback(&self, version: Option<&str>) -> Result<Pointer, RegistryError> {
        let current = self.current()?.ok_or_else(|| RegistryError::NoCurrent {
            root: self.root.clone(),
        })?;
        let target = match version {
            Some(version) => version.to_owned(),
            None => current.previous.ok_or_else(|| RegistryError::NoPrevious {
                root: self.root.clone(),
            })?,
        };
        self.activate(&target)
    }

    /// Removes the oldest versions beyond the `keep` newest, except the active and the
    /// previous one. Returns the removed versions.
    pub fn prune(&self) -> Result<Vec<String>, RegistryError> {
        let versions = self.versions()?;
        let pointer = self.current()?;
        let protected: Vec<&str> = pointer
            .iter()
            .flat_map(|p| std::iter::once(p.version.as_str()).chain(p.previous.as_deref()))
            .collect();
        let excess = versions.len().saturating_sub(self.keep);
        let mut removed = Vec::new();
        for version in versions.iter().take(excess) {
            if protected.contains(&version.as_str()) {
                continue;
            }
            // Renaming first hides the version at once; the removal may then take its time.
            let path = self.version_path(version);
            let doomed = self.root.join(temporary_name(version));
            fs::rename(&path, &doomed).map_err(io_error("cannot move", &path))?;
            fs::remove_dir_all(&doomed).map_err(io_error("cannot remove", &doomed))?;
            tracing::info!(version, "removed old model version");
            removed.push(version.clone());
        }
        Ok(removed)
    }

    fn write_pointer(&self, pointer: &Pointer) -> Result<(), RegistryError> {
        let path = self.root.join(CURRENT_FILE);
        let temporary = self.root.join(temporary_name(CURRENT_FILE));
        let text = serde_json::to_string(pointer).expect("a pointer always serialises");
        let result = write_synced(&temporary, text.as_bytes())
            .and_then(|()| fs::rename(&temporary, &path))
            .and_then(|()| sync_dir(&self.root));
        if let Err(error) = result {
            let _ = fs::remove_file(&temporary);
            return Err(io_error("cannot write", &path)(error));
        }
        Ok(())
    }

    fn not_installed(&self, version: &str) -> RegistryError {
        let installed = self
            .versions()
            .map(|v| {
                if v.is_empty() {
                    "none".to_owned()
                } else {
                    v.join(", ")
                }
            })
            .unwrap_or_else(|_| "unknown".to_owned());
        RegistryError::NotInstalled {
            version: version.to_owned(),
            root: self.root.clone(),
            installed,
        }
    }
}

/// A staging folder for a new version. Dropping it without [`Staging::commit`] removes it.
#[derive(Debug)]
pub struct Staging {
    registry: Registry,
    version: String,
    path: PathBuf,
    committed: bool,
}

impl Staging {
    /// The folder to write the manifest and the ONNX files into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to `file` in the staging folder.
    pub fn write_file(&self, file: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let path = self.path.join(file);
        write_synced(&path, bytes).map_err(io_error("cannot write", &path))
    }

    /// Checks the staged set, flushes it to disk and renames it to `<root>/<version>`, then
    /// removes versions beyond the registry's `keep`. The set is not activated.
    pub fn commit(mut self) -> Result<ModelSet, RegistryError> {
        let set = ModelSet::open(&self.path, &self.version)?;
        let entries = fs::read_dir(&self.path).map_err(io_error("cannot list", &self.path))?;
        for entry in entries {
            let path = entry.map_err(io_error("cannot list", &self.path))?.path();
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(io_error("cannot flush", &path))?;
        }
        sync_dir(&self.path).map_err(io_error("cannot flush", &self.path))?;

        let target = self.registry.version_path(&self.version);
        // rename(2) replaces an empty folder silently, so the check happens here too.
        if target.exists() {
            return Err(RegistryError::AlreadyInstalled {
                version: self.version.clone(),
                root: self.registry.root.clone(),
            });
        }
        fs::rename(&self.path, &target).map_err(io_error("cannot rename", &self.path))?;
        self.committed = true;
        let root = self.registry.root.clone();
        sync_dir(&root).map_err(io_error("cannot flush", &root))?;
        tracing::info!(version = %self.version, path = %target.display(), "installed model version");
        // The set is installed at this point; a failed clean-up must not report otherwise.
        if let Err(error) = self.registry.prune() {
            tracing::warn!(%error, "could not remove old model versions");
        }
        Ok(ModelSet {
            path: target,
            ..set
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing to report: the staging folder is hidden and useless after a failure.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn check_name(version: &str) -> Result<(), RegistryError> {
    check_version_name(version).map_err(|expected| RegistryError::InvalidVersion {
        version: version.to_owned(),
        expected,
    })
}

static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temporary_name(base: &str) -> String {
    let sequence = TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMPORARY_PREFIX}{base}-{}-{sequence}", std::process::id())
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}
