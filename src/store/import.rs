//! Importing dataset NPZ files into the segment store.
//!
//! A file is identified by the SHA-256 of its bytes: importing the same bytes again, under
//! any name or path, finds the stored dataset and writes nothing. Reading and validation
//! are those of [`Dataset::load`], so a file that `clarify dataset inspect` rejects is
//! rejected here with the same error, before anything is written. [`LoadedDataset::load`]
//! does that reading without a store, so that a caller can validate a file before it
//! opens or creates the store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{ContentHash, DatasetMeta, DatasetRecord, Store, StoreError, unix_secs_now};
use crate::dataset::{Dataset, DatasetError, Episode};
use crate::segment::{DEFAULT_SEGMENT_LENGTH, Segments, ZeroSegmentLength};

/// Settings of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Dataset name to record; `None` takes the file stem.
    pub name: Option<String>,
    /// Segment length H in steps, used only to count the segments and the episodes too
    /// short to give one. The store keeps every episode whatever its length.
    pub segment_length: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            name: None,
            segment_length: DEFAULT_SEGMENT_LENGTH,
        }
    }
}

/// Outcome of an import.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportOutcome {
    /// The file was new and is now stored.
    Imported(ImportSummary),
    /// A file with the same bytes was imported before; nothing was written.
    AlreadyImported(ImportSummary),
}

impl ImportOutcome {
    /// Returns the summary of the stored dataset, new or found.
    pub fn summary(&self) -> &ImportSummary {
        match self {
            ImportOutcome::Imported(summary) | ImportOutcome::AlreadyImported(summary) => summary,
        }
    }
}

/// Counts of a stored dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSummary {
    /// The stored dataset.
    pub dataset: DatasetRecord,
    /// Number of episodes.
    pub episodes: usize,
    /// Number of steps.
    pub steps: usize,
    /// Segment length H that the segment counts refer to.
    pub segment_length: usize,
    /// Number of segments of H steps.
    pub segments: usize,
    /// Episodes shorter than H steps, which give no segment.
    pub short_episodes: usize,
}

/// A file that could not be imported. Nothing was written to the store.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("failed to read {} to compute its hash", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Dataset(#[from] DatasetError),

    #[error("failed to read the JSON sidecar {}", path.display())]
    SidecarRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("JSON sidecar {} is not valid JSON: fix or remove it", path.display())]
    SidecarJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(transparent)]
    SegmentLength(#[from] ZeroSegmentLength),

    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Returns whether the error comes from invalid input: an invalid dataset file or
    /// sidecar, a segment length of 0, or a store error that
    /// [`StoreError::is_invalid_input`] classifies so. Failed reads return `false`.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ImportError::Dataset(_)
            | ImportError::SidecarJson { .. }
            | ImportError::SegmentLength(_) => true,
            ImportError::Read { .. } | ImportError::SidecarRead { .. } => false,
            ImportError::Store(error) => error.is_invalid_input(),
        }
    }
}

/// A dataset file that was read and validated, with its hash and JSON sidecar, ready to
/// import. Loading one needs no store, so a caller can reject an invalid file before it
/// opens or creates the store.
#[derive(Debug)]
pub struct LoadedDataset {
    path: PathBuf,
    content_hash: ContentHash,
    dataset: Dataset,
    sidecar_json: Option<String>,
}

impl LoadedDataset {
    /// Reads and validates the file at `path` like [`Dataset::load`], hashes its bytes and
    /// reads its JSON sidecar (same stem, `.json`), if present.
    pub fn load(path: &Path) -> Result<Self, ImportError> {
        let dataset = Dataset::load(path)?;
        // NOTE: the file is read twice, once by Dataset::load and once here for the hash. A
        // file replaced between the two reads is stored under the second file's hash.
        let content_hash = ContentHash::of_file(path).map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            content_hash,
            dataset,
            sidecar_json: read_sidecar(path)?,
        })
    }

    /// Returns the file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Imports a dataset NPZ file and its JSON sidecar (same stem, `.json`), if present, into
/// the store in one transaction.
pub fn import_npz(
    store: &mut Store,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportOutcome, ImportError> {
    if options.segment_length == 0 {
        return Err(ZeroSegmentLength.into());
    }
    import_loaded(store, LoadedDataset::load(path)?, options)
}

/// Imports a loaded dataset file into the store in one transaction, unless a file with
/// the same bytes was imported before.
pub fn import_loaded(
    store: &mut Store,
    loaded: LoadedDataset,
    options: &ImportOptions,
) -> Result<ImportOutcome, ImportError> {
    if options.segment_length == 0 {
        return Err(ZeroSegmentLength.into());
    }

    let LoadedDataset {
        path,
        content_hash,
        dataset,
        sidecar_json,
    } = loaded;
    if let Some(existing) = store.dataset_by_hash(&content_hash)? {
        tracing::info!(
            path = %path.display(),
            dataset = existing.id.get(),
            sha256 = %content_hash,
            "file already imported"
        );
        let summary = summarize(store, existing, options.segment_length)?;
        return Ok(ImportOutcome::AlreadyImported(summary));
    }

    let meta = DatasetMeta {
        name: options.name.clone().unwrap_or_else(|| file_stem(&path)),
        source_path: path.clone(),
        content_hash,
        sidecar_json,
        imported_at_unix_secs: unix_secs_now(),
    };
    let id = store.insert_dataset(&meta, &dataset)?;
    tracing::info!(
        path = %path.display(),
        dataset = id.get(),
        episodes = dataset.episodes().len(),
        steps = dataset.step_count(),
        "imported dataset"
    );

    let summary = summarize(store, store.dataset(id)?, options.segment_length)?;
    Ok(ImportOutcome::Imported(summary))
}

/// Counts the stored episodes, steps and segments of a dataset.
fn summarize(
    store: &Store,
    dataset: DatasetRecord,
    segment_length: usize,
) -> Result<ImportSummary, ImportError> {
    let episodes: Vec<Episode> = store
        .episodes(dataset.id)?
        .iter()
        .map(|record| Episode {
            start: record.first_step,
            len: record.step_count,
            end: record.end,
        })
        .collect();
    let segments = Segments::enumerate(&episodes, segment_length)?;

    Ok(ImportSummary {
        episodes: episodes.len(),
        steps: episodes.iter().map(|episode| episode.len).sum(),
        segment_length,
        segments: segments.len(),
        short_episodes: segments.short_episodes(),
        dataset,
    })
}

/// Reads `<stem>.json` beside the dataset file. Returns `None` when there is none, and
/// fails when it exists but cannot be read or is not valid JSON.
fn read_sidecar(path: &Path) -> Result<Option<String>, ImportError> {
    let sidecar = path.with_extension("json");
    let text = match fs::read_to_string(&sidecar) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ImportError::SidecarRead {
                path: sidecar,
                source,
            });
        }
    };

    if let Err(source) = serde_json::from_str::<serde_json::Value>(&text) {
        return Err(ImportError::SidecarJson {
            path: sidecar,
            source,
        });
    }
    Ok(Some(text))
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
