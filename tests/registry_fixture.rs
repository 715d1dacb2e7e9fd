//! Model sets with real ONNX policies for the registry and runner tests. The test files
//! include this file with `#[path]`; on its own it has no tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use clarify::onnx::{Activation, DenseLayer, Mlp, MlpExportOptions, Standardization, encode_model};
use clarify::registry::{
    ActionBounds, ComponentVersions, DataProvenance, MANIFEST_FILE, MANIFEST_FORMAT_VERSION,
    Manifest, NetworkFile, Networks, Normalization, RobotInterface, TensorShape, sha256_bytes,
};

pub const OBSERVATION_DIM: usize = 3;
pub const ACTION_DIM: usize = 2;
pub const POLICY_FILE: &str = "policy.onnx";
pub const DATASET_SHA256: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A linear policy `action[j] = gain * observation[j] + bias` for the first `ACTION_DIM`
/// entries, with optional tanh squashing and in-graph standardisation.
#[derive(Clone, Debug)]
pub struct LinearPolicy {
    pub gain: f32,
    pub bias: f32,
    pub tanh: bool,
    /// Mean and std written into the manifest (and into the graph when `in_graph`).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub in_graph: bool,
    pub bounds: (f32, f32),
}

impl Default for LinearPolicy {
    fn default() -> Self {
        Self {
            gain: 1.0,
            bias: 0.0,
            tanh: false,
            mean: vec![0.0; OBSERVATION_DIM],
            std: vec![1.0; OBSERVATION_DIM],
            in_graph: false,
            bounds: (-1.0, 1.0),
        }
    }
}

impl LinearPolicy {
    pub fn mlp(&self) -> Mlp {
        let mut weight = vec![0.0; OBSERVATION_DIM * ACTION_DIM];
        for j in 0..ACTION_DIM {
            weight[j * ACTION_DIM + j] = self.gain;
        }
        Mlp {
            sizes: vec![OBSERVATION_DIM, ACTION_DIM],
            layers: vec![DenseLayer {
                weight,
                bias: vec![self.bias; ACTION_DIM],
                activation: Activation::Identity,
            }],
            input_standardization: self.in_graph.then(|| Standardization {
                mean: self.mean.clone(),
                std: self.std.clone(),
            }),
            output_tanh: self.tanh,
        }
    }

    pub fn onnx_bytes(&self) -> Vec<u8> {
        let options = MlpExportOptions {
            input_name: "observations".to_owned(),
            output_name: "actions".to_owned(),
            ..MlpExportOptions::default()
        };
        encode_model(&self.mlp().to_model(&options).expect("the test MLP exports"))
    }

    /// The action the policy computes for a raw observation, before clamping.
    pub fn expected(&self, observation: &[f32]) -> Vec<f32> {
        (0..ACTION_DIM)
            .map(|j| {
                let x = (observation[j] - self.mean[j]) / self.std[j];
                let y = self.gain * x + self.bias;
                if self.tanh { y.tanh() } else { y }
            })
            .collect()
    }

    /// The manifest of a set holding this policy, for the ONNX bytes `onnx`.
    pub fn manifest(&self, version: &str, onnx: &[u8]) -> Manifest {
        let inputs = vec![TensorShape::batched("observations", OBSERVATION_DIM)];
        let outputs = vec![TensorShape::batched("actions", ACTION_DIM)];
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            version: version.to_owned(),
            observation_dim: OBSERVATION_DIM,
            action_dim: ACTION_DIM,
            observation_normalization: Normalization {
                mean: self.mean.clone(),
                std: self.std.clone(),
                in_graph: self.in_graph,
            },
            action_bounds: ActionBounds {
                low: vec![self.bounds.0; ACTION_DIM],
                high: vec![self.bounds.1; ACTION_DIM],
            },
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            segment_length: 25,
            networks: Networks {
                policy: NetworkFile {
                    file: POLICY_FILE.to_owned(),
                    sha256: sha256_bytes(onnx),
                    inputs,
                    outputs,
                },
                encoder: None,
                reward: None,
            },
            versions: ComponentVersions {
                encoder: "enc-1".to_owned(),
                reward: "rew-1".to_owned(),
                policy: version.to_owned(),
            },
            data: DataProvenance {
                dataset_sha256: DATASET_SHA256.to_owned(),
                answers_sha256: "2".repeat(64),
                answers_used: 40,
            },
            robot: RobotInterface::default(),
            metrics: BTreeMap::from([("reward_accuracy".to_owned(), 0.75)]),
            libraries: BTreeMap::from([("clarify".to_owned(), "0.1.0".to_owned())]),
        }
    }

    /// Writes the set (ONNX file and manifest) into `folder`, returning the manifest.
    pub fn write_set(&self, folder: &Path, version: &str) -> Result<Manifest> {
        fs::create_dir_all(folder)?;
        let onnx = self.onnx_bytes();
        fs::write(folder.join(POLICY_FILE), &onnx)?;
        let manifest = self.manifest(version, &onnx);
        fs::write(folder.join(MANIFEST_FILE), manifest.to_json())?;
        Ok(manifest)
    }
}

/// A fresh folder under the system's temporary directory, unique per call.
pub fn temp_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("clarify-{label}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path).expect("temporary folder");
    path
}
