//! Discovery of the ONNX Runtime shared library and its version check.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{InferError, ONNX_RUNTIME_VERSION, TriedPath, TriedPaths};

/// Environment variable with the library path, the one that ort itself reads.
pub const LIBRARY_PATH_VARIABLE: &str = "ORT_DYLIB_PATH";

/// File name prefix of the library: `libonnxruntime.so.1.31.1` on Linux,
/// `libonnxruntime.1.31.1.dylib` on macOS.
const LIBRARY_STEM: &str = "libonnxruntime";

/// Locations of the library search, in order of precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibrarySearch {
    /// The `library_path` setting. When set, it is the only candidate.
    pub configured: Option<PathBuf>,
    /// The value of `ORT_DYLIB_PATH`. When set (and no `library_path` is), it is the only
    /// candidate.
    pub environment_variable: Option<PathBuf>,
    /// Directories whose `.venv/lib/python3*/site-packages/onnxruntime/capi/` is searched, in
    /// order, when neither of the above is set.
    pub project_dirs: Vec<PathBuf>,
}

/// The library that the search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryLocation {
    /// The path with symbolic links resolved.
    pub path: PathBuf,
    /// Setting or search that produced the path.
    pub source: &'static str,
    /// The version in the file name (`1.31.1`), when the name carries one.
    pub version: Option<String>,
}

impl LibrarySearch {
    /// Builds the search of this process: `configured`, then `ORT_DYLIB_PATH`, then the `.venv`
    /// of the current directory and of the directory this crate was built from.
    pub fn from_process(configured: Option<&Path>) -> Self {
        let environment_variable = std::env::var_os(LIBRARY_PATH_VARIABLE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let mut project_dirs = Vec::new();
        if let Ok(current_dir) = std::env::current_dir() {
            project_dirs.push(current_dir);
        }
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        if !project_dirs.contains(&crate_dir) {
            project_dirs.push(crate_dir);
        }
        Self {
            configured: configured.map(Path::to_path_buf),
            environment_variable,
            project_dirs,
        }
    }

    /// Finds the library. An explicit path (`library_path` or `ORT_DYLIB_PATH`) that is not a
    /// file is an error rather than a reason to keep searching, so a typo does not silently
    /// load another library.
    pub fn find(&self) -> Result<LibraryLocation, InferError> {
        if let Some(path) = &self.configured {
            return locate_file(path, "library_path");
        }
        if let Some(path) = &self.environment_variable {
            return locate_file(path, LIBRARY_PATH_VARIABLE);
        }

        let mut tried = Vec::new();
        for dir in &self.project_dirs {
            tried.push(TriedPath {
                source: ".venv search",
                path: dir
                    .join(".venv/lib/python3*/site-packages/onnxruntime/capi")
                    .join(format!("{LIBRARY_STEM}*")),
            });
            if let Some(path) = search_venv(dir) {
                return locate_file(&path, ".venv search");
            }
        }
        Err(InferError::LibraryNotFound {
            tried: TriedPaths(tried),
        })
    }
}

impl LibraryLocation {
    /// Checks that the version in the file name is 1.31.x. A name without a version passes, and
    /// ort then rejects releases older than 1.31 when it loads the library.
    pub fn check_version(&self) -> Result<(), InferError> {
        let Some(version) = &self.version else {
            return Ok(());
        };
        let expected_prefix = format!("{ONNX_RUNTIME_VERSION}.");
        if version.starts_with(&expected_prefix) || version == ONNX_RUNTIME_VERSION {
            return Ok(());
        }
        Err(InferError::LibraryVersion {
            path: self.path.clone(),
            found: version.clone(),
        })
    }
}

fn locate_file(path: &Path, source: &'static str) -> Result<LibraryLocation, InferError> {
    let not_found = || InferError::LibraryNotFound {
        tried: TriedPaths(vec![TriedPath {
            source,
            path: path.to_path_buf(),
        }]),
    };
    if !path.is_file() {
        return Err(not_found());
    }
    let path = fs::canonicalize(path).map_err(|_| not_found())?;
    let version = path.file_name().and_then(version_from_file_name);
    Ok(LibraryLocation {
        path,
        source,
        version,
    })
}

/// Returns the first library file under `dir/.venv/lib/python3*/site-packages/onnxruntime/capi/`,
/// preferring a file whose name carries a 1.31 version. Directory entries are sorted so the
/// choice does not depend on the file system's order.
fn search_venv(dir: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    for python_dir in sorted_entries(&dir.join(".venv/lib")) {
        let is_python3 = python_dir
            .file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|name| name.starts_with("python3"));
        if !is_python3 {
            continue;
        }
        let capi = python_dir.join("site-packages/onnxruntime/capi");
        candidates.extend(
            sorted_entries(&capi)
                .into_iter()
                .filter(|path| path.file_name().is_some_and(is_library_file_name)),
        );
    }
    let preferred = candidates.iter().find(|path| {
        path.file_name()
            .and_then(version_from_file_name)
            .is_some_and(|version| version.starts_with(&format!("{ONNX_RUNTIME_VERSION}.")))
    });
    preferred.or(candidates.first()).cloned()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    paths
}

/// Whether `name` is the main library (`libonnxruntime.so`, `libonnxruntime.so.1.31.1`,
/// `libonnxruntime.1.31.1.dylib`) and not a provider plugin such as
/// `libonnxruntime_providers_shared.so`.
fn is_library_file_name(name: &OsStr) -> bool {
    let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(LIBRARY_STEM)) else {
        return false;
    };
    rest.starts_with(".so") || (rest.starts_with('.') && rest.ends_with(".dylib"))
}

/// Extracts `1.31.1` from `libonnxruntime.so.1.31.1` or `libonnxruntime.1.31.1.dylib`.
fn version_from_file_name(name: &OsStr) -> Option<String> {
    let rest = name.to_str()?.strip_prefix(LIBRARY_STEM)?;
    let version = rest
        .strip_prefix(".so.")
        .or_else(|| rest.strip_prefix('.')?.strip_suffix(".dylib"))?;
    let is_version = !version.is_empty()
        && version
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    is_version.then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsed_from_linux_and_macos_names() {
        let linux = version_from_file_name(OsStr::new("libonnxruntime.so.1.31.1"));
        let macos = version_from_file_name(OsStr::new("libonnxruntime.1.31.1.dylib"));
        assert_eq!(linux.as_deref(), Some("1.31.1"));
        assert_eq!(macos.as_deref(), Some("1.31.1"));
    }

    #[test]
    fn version_absent_from_unversioned_names() {
        for name in [
            "libonnxruntime.so",
            "libonnxruntime.dylib",
            "libonnxruntime.so.1.x",
        ] {
            assert_eq!(version_from_file_name(OsStr::new(name)), None, "{name}");
        }
    }

    #[test]
    fn provider_plugins_are_not_library_files() {
        assert!(is_library_file_name(OsStr::new("libonnxruntime.so.1.31.1")));
        assert!(is_library_file_name(OsStr::new("libonnxruntime.so")));
        assert!(!is_library_file_name(OsStr::new(
            "libonnxruntime_providers_shared.so"
        )));
        assert!(!is_library_file_name(OsStr::new(
            "onnxruntime_pybind11_state.so"
        )));
    }

    #[test]
    fn version_check_accepts_only_1_31() {
        let location = |version: &str| LibraryLocation {
            path: PathBuf::from("/lib/libonnxruntime.so"),
            source: "library_path",
            version: Some(version.to_owned()),
        };
        assert!(location("1.31.1").check_version().is_ok());
        assert!(location("1.31.0").check_version().is_ok());
        let error = location("1.30.0").check_version().unwrap_err().to_string();
        assert!(error.contains("1.30.0"), "{error}");
        assert!(error.contains("onnxruntime==1.31.1"), "{error}");
        assert!(location("1.310.0").check_version().is_err());
        assert!(location("2.31.0").check_version().is_err());
    }
}
