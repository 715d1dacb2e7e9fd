//! Inference settings (parsing and validation) and the ONNX Runtime library search. Nothing here
//! loads the library.

mod onnx_common;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clarify::infer::{ExecutionProviderKind, InferConfig, InferError, LibrarySearch};
use onnx_common::temp_dir;

fn parse(json: &str) -> serde_json::Result<InferConfig> {
    serde_json::from_str(json)
}

#[test]
fn empty_config_gives_defaults() -> Result<()> {
    let config = parse("{}")?;

    assert_eq!(config, InferConfig::default());
    assert_eq!(
        config.execution_providers,
        [
            ExecutionProviderKind::TensorRt,
            ExecutionProviderKind::Cuda,
            ExecutionProviderKind::Cpu
        ]
    );
    assert!(!config.require_gpu);
    assert!(!config.tensorrt_fp16);
    assert_eq!(config.intra_op_threads, 0);
    config.validate()?;
    Ok(())
}

#[test]
fn full_config_parses() -> Result<()> {
    let json = r#"{
        "library_path": "/opt/onnxruntime/lib/libonnxruntime.so.1.31.1",
        "execution_providers": ["cuda", "cpu"],
        "tensorrt_fp16": true,
        "tensorrt_engine_cache_dir": "/var/cache/clarify/trt",
        "require_gpu": false,
        "intra_op_threads": 2
    }"#;

    let config = parse(json)?;

    assert_eq!(
        config.library_path.as_deref(),
        Some(Path::new("/opt/onnxruntime/lib/libonnxruntime.so.1.31.1"))
    );
    assert_eq!(
        config.execution_providers,
        [ExecutionProviderKind::Cuda, ExecutionProviderKind::Cpu]
    );
    assert!(config.tensorrt_fp16);
    assert_eq!(
        config.tensorrt_engine_cache_dir.as_deref(),
        Some(Path::new("/var/cache/clarify/trt"))
    );
    assert_eq!(config.intra_op_threads, 2);
    config.validate()?;
    Ok(())
}

#[test]
fn unknown_field_rejected_by_name() {
    let error = parse(r#"{"execution_provider": ["cpu"]}"#).unwrap_err();

    assert!(
        error.to_string().contains("`execution_provider`"),
        "{error}"
    );
}

#[test]
fn unknown_provider_rejected_by_name() {
    let error = parse(r#"{"execution_providers": ["cuda", "rocm"]}"#).unwrap_err();

    let message = error.to_string();
    assert!(message.contains("`rocm`"), "{message}");
    assert!(message.contains("tensorrt"), "{message}");
}

#[test]
fn provider_names_are_lowercase_only() {
    let error = parse(r#"{"execution_providers": ["CUDA"]}"#).unwrap_err();

    assert!(error.to_string().contains("`CUDA`"), "{error}");
}

#[test]
fn invalid_provider_lists_rejected() {
    let cases = [
        (r#"{"execution_providers": []}"#, "[]"),
        (
            r#"{"execution_providers": ["cuda", "cuda"]}"#,
            "listed twice",
        ),
        (
            r#"{"execution_providers": ["cpu", "cuda"]}"#,
            "cpu must be last",
        ),
        (
            r#"{"execution_providers": ["cpu"], "require_gpu": true}"#,
            "require_gpu",
        ),
    ];
    for (json, expected) in cases {
        let config = parse(json).expect("valid JSON for InferConfig");

        let error = config.validate().unwrap_err();

        assert!(
            matches!(
                &error,
                InferError::InvalidConfig {
                    field: "execution_providers",
                    ..
                }
            ),
            "{json}: {error}"
        );
        assert!(error.to_string().contains(expected), "{json}: {error}");
    }
}

#[test]
fn empty_paths_rejected() {
    for field in ["library_path", "tensorrt_engine_cache_dir"] {
        let config = parse(&format!(r#"{{"{field}": ""}}"#)).expect("valid JSON");

        let error = config.validate().unwrap_err();

        assert!(error.to_string().contains(field), "{error}");
    }
}

#[test]
fn config_round_trips_through_json() -> Result<()> {
    let config = InferConfig {
        library_path: Some(PathBuf::from("/lib/libonnxruntime.so.1.31.1")),
        execution_providers: vec![ExecutionProviderKind::TensorRt, ExecutionProviderKind::Cpu],
        tensorrt_fp16: true,
        tensorrt_engine_cache_dir: Some(PathBuf::from("cache")),
        require_gpu: false,
        intra_op_threads: 3,
    };

    let parsed = parse(&serde_json::to_string(&config)?)?;

    assert_eq!(parsed, config);
    Ok(())
}

/// Creates `dir/.venv/lib/<python>/site-packages/onnxruntime/capi/` with empty files named
/// `files`, the layout of the onnxruntime wheel.
fn fake_venv(dir: &Path, python: &str, files: &[&str]) -> Result<PathBuf> {
    let capi = dir
        .join(".venv/lib")
        .join(python)
        .join("site-packages/onnxruntime/capi");
    fs::create_dir_all(&capi)?;
    for file in files {
        fs::write(capi.join(file), b"")?;
    }
    Ok(capi)
}

#[test]
fn search_without_library_lists_tried_paths() {
    let first = temp_dir("search-empty-first");
    let second = temp_dir("search-empty-second");
    let search = LibrarySearch {
        project_dirs: vec![first.clone(), second.clone()],
        ..LibrarySearch::default()
    };

    let error = search.find().unwrap_err();

    assert!(
        matches!(error, InferError::LibraryNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    for dir in [&first, &second] {
        let pattern = dir.join(".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime*");
        assert!(
            message.contains(&pattern.display().to_string()),
            "{message}"
        );
    }
    assert!(
        message.contains("pip install onnxruntime==1.31.1"),
        "{message}"
    );
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
}

#[test]
fn search_finds_wheel_library_and_skips_plugins() -> Result<()> {
    let dir = temp_dir("search-wheel");
    let files = [
        "libonnxruntime_providers_shared.so",
        "libonnxruntime.so.1.31.1",
        "onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
    ];
    let capi = fake_venv(&dir, "python3.11", &files)?;
    let search = LibrarySearch {
        project_dirs: vec![temp_dir("search-wheel-empty"), dir],
        ..LibrarySearch::default()
    };

    let location = search.find()?;

    assert_eq!(
        location.path,
        fs::canonicalize(capi.join("libonnxruntime.so.1.31.1"))?
    );
    assert_eq!(location.version.as_deref(), Some("1.31.1"));
    assert_eq!(location.source, ".venv search");
    location.check_version()?;
    Ok(())
}

#[test]
fn search_prefers_1_31_over_other_versions() -> Result<()> {
    let dir = temp_dir("search-prefers");
    fake_venv(&dir, "python3.10", &["libonnxruntime.so.1.20.0"])?;
    fake_venv(&dir, "python3.11", &["libonnxruntime.so.1.31.1"])?;
    let search = LibrarySearch {
        project_dirs: vec![dir],
        ..LibrarySearch::default()
    };

    let location = search.find()?;

    assert_eq!(location.version.as_deref(), Some("1.31.1"));
    Ok(())
}

#[test]
fn search_reports_wrong_wheel_version() -> Result<()> {
    let dir = temp_dir("search-wrong-version");
    fake_venv(&dir, "python3.11", &["libonnxruntime.so.1.30.0"])?;
    let search = LibrarySearch {
        project_dirs: vec![dir],
        ..LibrarySearch::default()
    };

    let error = search.find()?.check_version().unwrap_err();

    assert!(
        matches!(&error, InferError::LibraryVersion { found, .. } if found == "1.30.0"),
        "{error}"
    );
    Ok(())
}

#[test]
fn configured_path_takes_precedence() -> Result<()> {
    let dir = temp_dir("search-precedence");
    let configured = dir.join("configured/libonnxruntime.so.1.31.1");
    let from_variable = dir.join("variable/libonnxruntime.so.1.31.1");
    for path in [&configured, &from_variable] {
        fs::create_dir_all(path.parent().expect("parent"))?;
        fs::write(path, b"")?;
    }
    fake_venv(&dir, "python3.11", &["libonnxruntime.so.1.31.1"])?;
    let mut search = LibrarySearch {
        configured: Some(configured.clone()),
        environment_variable: Some(from_variable.clone()),
        project_dirs: vec![dir],
    };

    let first = search.find()?;
    search.configured = None;
    let second = search.find()?;

    assert_eq!(first.path, fs::canonicalize(&configured)?);
    assert_eq!(first.source, "library_path");
    assert_eq!(second.path, fs::canonicalize(&from_variable)?);
    assert_eq!(second.source, "ORT_DYLIB_PATH");
    Ok(())
}

#[test]
fn missing_explicit_path_stops_search() -> Result<()> {
    let dir = temp_dir("search-explicit-missing");
    fake_venv(&dir, "python3.11", &["libonnxruntime.so.1.31.1"])?;
    let missing = dir.join("typo/libonnxruntime.so.1.31.1");
    let search = LibrarySearch {
        environment_variable: Some(missing.clone()),
        project_dirs: vec![dir],
        ..LibrarySearch::default()
    };

    let error = search.find().unwrap_err();

    let message = error.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    Ok(())
}
