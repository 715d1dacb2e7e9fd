//! Log output of the inference runtime: ONNX Runtime's own messages under their `tracing`
//! target, the provider fallback warnings and the model-loaded summary.
//!
//! The ONNX Runtime environment reads the subscriber's level once, when the first runtime of the
//! process is created, so this file contains a single test that installs the subscriber first.

mod onnx_common;

use std::io;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use clarify::infer::{InferConfig, ModelSignature, ONNX_RUNTIME_LOG_TARGET, Runtime, TensorSpec};
use clarify::onnx::{MlpExportOptions, write_model};
use onnx_common::{random_mlp, require_onnx_runtime_library, temp_dir};

#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer lock")).into_owned()
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn runtime_log_messages_written() -> Result<()> {
    require_onnx_runtime_library();
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(format!("{ONNX_RUNTIME_LOG_TARGET}=trace,clarify=info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let path = temp_dir("logging").join("mlp.onnx");
    write_model(
        &random_mlp(&[6, 4, 2], 31).to_model(&MlpExportOptions::default())?,
        &path,
    )?;
    let signature = ModelSignature {
        inputs: vec![TensorSpec::new("input", 2)],
        outputs: vec![TensorSpec::new("output", 2)],
    };

    let runtime = Runtime::new(InferConfig::default())?;
    let model = runtime.load_model(&path, &signature)?;

    let text = log.text();
    let onnxruntime_lines = text
        .lines()
        .filter(|line| line.contains(&format!(" {ONNX_RUNTIME_LOG_TARGET}:")))
        .count();
    assert!(
        onnxruntime_lines > 0,
        "no ONNX Runtime messages forwarded:\n{text}"
    );
    let summary = text
        .lines()
        .find(|line| line.contains("loaded ONNX model"))
        .unwrap_or_else(|| panic!("no model summary in the log:\n{text}"));
    assert!(summary.contains("INFO"), "{summary}");
    assert!(summary.contains("provider=cpu"), "{summary}");
    assert!(summary.contains("input: [batch, 6]"), "{summary}");
    assert!(summary.contains("output: [batch, 2]"), "{summary}");
    assert!(summary.contains(&path.display().to_string()), "{summary}");
    for provider in ["tensorrt", "cuda"] {
        let warned = text
            .lines()
            .any(|line| line.contains("WARN") && line.contains(&format!("provider {provider}")));
        assert!(warned, "no fallback warning for {provider}:\n{text}");
    }
    assert_eq!(model.provider().as_str(), "cpu");
    Ok(())
}
