//! Helpers for the ONNX export and inference tests: seeded random data, reference forward
//! passes written with ndarray, the Python ONNX checker and temporary paths.

#![allow(dead_code)] // Each test crate uses a different part of these helpers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clarify::infer::LibrarySearch;
use clarify::onnx::{Activation, DenseLayer, Mlp, Standardization};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Returns the Python interpreter of the project's environment, which has the `onnx` package.
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// Runs `onnx.checker.check_model(..., full_check=True)` (which includes strict shape inference)
/// on the model file and panics with the checker's message if it rejects the model.
pub fn assert_passes_onnx_checker(model: &Path) {
    let python = venv_python();
    assert!(
        python.is_file(),
        "{} not found: run .ci/setup to create the Python environment with the onnx package",
        python.display()
    );
    let script =
        "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)";
    let output = Command::new(&python)
        .args(["-c", script])
        .arg(model)
        .output()
        .expect("start the Python ONNX checker");
    assert!(
        output.status.success(),
        "onnx.checker rejected {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Panics with setup instructions when the ONNX Runtime library of `.venv` is missing.
pub fn require_onnx_runtime_library() {
    let search = LibrarySearch::from_process(None);
    if let Err(error) = search.find() {
        panic!("the ONNX Runtime tests need the library from .venv: run .ci/setup ({error})");
    }
}

/// Returns a fresh directory in this test target's temporary folder. Each test passes its own
/// name, so tests running in parallel never share a directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("clarify-onnx-tests")
        .join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("remove the previous test directory");
    }
    fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Seeded generator of uniform f32 values.
pub struct Uniform(Xoshiro256PlusPlus);

impl Uniform {
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Draws a value in `[low, high)` from the top 24 bits of one 32-bit draw.
    pub fn sample(&mut self, low: f32, high: f32) -> f32 {
        let unit = (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        low + (high - low) * unit
    }

    pub fn vector(&mut self, len: usize, low: f32, high: f32) -> Vec<f32> {
        (0..len).map(|_| self.sample(low, high)).collect()
    }

    pub fn matrix(&mut self, rows: usize, cols: usize, low: f32, high: f32) -> Array2<f32> {
        Array2::from_shape_vec((rows, cols), self.vector(rows * cols, low, high))
            .expect("rows · cols values")
    }
}

/// Builds an MLP with uniform weights in ±1/sqrt(fan_in), LeakyReLU(0.01) on hidden layers, input
/// standardization with std in [0.5, 2) and output tanh.
pub fn random_mlp(sizes: &[usize], seed: u64) -> Mlp {
    let mut rng = Uniform::new(seed);
    let layer_count = sizes.len() - 1;
    let layers = (0..layer_count)
        .map(|index| {
            let (fan_in, fan_out) = (sizes[index], sizes[index + 1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let activation = if index + 1 < layer_count {
                Activation::LeakyRelu { alpha: 0.01 }
            } else {
                Activation::Identity
            };
            DenseLayer {
                weight: rng.vector(fan_in * fan_out, -bound, bound),
                bias: rng.vector(fan_out, -bound, bound),
                activation,
            }
        })
        .collect();
    Mlp {
        sizes: sizes.to_vec(),
        layers,
        input_standardization: Some(Standardization {
            mean: rng.vector(sizes[0], -1.0, 1.0),
            std: rng.vector(sizes[0], 0.5, 2.0),
        }),
        output_tanh: true,
    }
}

/// Computes the MLP's forward pass in f64 with ndarray, independently of the exporter.
pub fn mlp_reference(mlp: &Mlp, input: ArrayView2<'_, f32>) -> Array2<f64> {
    let mut x = input.mapv(f64::from);
    if let Some(standardization) = &mlp.input_standardization {
        let mean = Array1::from(standardization.mean.clone()).mapv(f64::from);
        let std = Array1::from(standardization.std.clone()).mapv(f64::from);
        x = (x - &mean) / &std;
    }
    for (index, layer) in mlp.layers.iter().enumerate() {
        let shape = (mlp.sizes[index], mlp.sizes[index + 1]);
        let weight = Array2::from_shape_vec(shape, layer.weight.clone())
            .expect("weight of in · out values")
            .mapv(f64::from);
        let bias = Array1::from(layer.bias.clone()).mapv(f64::from);
        x = x.dot(&weight) + &bias;
        x = apply_activation(x, layer.activation);
    }
    if mlp.output_tanh {
        x.mapv_inplace(f64::tanh);
    }
    x
}

pub fn apply_activation(mut x: Array2<f64>, activation: Activation) -> Array2<f64> {
    match activation {
        Activation::Identity => {}
        Activation::Relu => x.mapv_inplace(|v| v.max(0.0)),
        Activation::LeakyRelu { alpha } => {
            let alpha = f64::from(alpha);
            x.mapv_inplace(|v| if v >= 0.0 { v } else { alpha * v });
        }
        Activation::Tanh => x.mapv_inplace(f64::tanh),
        Activation::Sigmoid => x.mapv_inplace(sigmoid),
    }
    x
}

pub fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Computes layer normalization over the last axis of a matrix, with population variance.
pub fn layer_norm_reference(
    x: &Array2<f64>,
    scale: &[f32],
    bias: &[f32],
    epsilon: f64,
) -> Array2<f64> {
    let mean = x
        .mean_axis(Axis(1))
        .expect("non-empty rows")
        .insert_axis(Axis(1));
    let centered = x - &mean;
    let variance = centered
        .mapv(|v| v * v)
        .mean_axis(Axis(1))
        .expect("non-empty rows")
        .insert_axis(Axis(1));
    let scale = Array1::from(scale.to_vec()).mapv(f64::from);
    let bias = Array1::from(bias.to_vec()).mapv(f64::from);
    centered / variance.mapv(|v| (v + epsilon).sqrt()) * &scale + &bias
}

/// Computes softmax over the last axis of a matrix.
pub fn softmax_reference(x: &Array2<f64>) -> Array2<f64> {
    let max = x.map_axis(Axis(1), |row| row.fold(f64::NEG_INFINITY, |a, &b| a.max(b)));
    let exp = x - &max.insert_axis(Axis(1));
    let exp = exp.mapv(f64::exp);
    let sum = exp.sum_axis(Axis(1)).insert_axis(Axis(1));
    exp / &sum
}

/// Computes ‖actual − expected‖₂ / ‖expected‖₂ over all elements.
pub fn relative_error<'a>(
    actual: impl IntoIterator<Item = &'a f32>,
    expected: impl IntoIterator<Item = &'a f64>,
) -> f64 {
    let mut difference = 0.0;
    let mut norm = 0.0;
    let mut actual = actual.into_iter();
    for &e in expected {
        let a = f64::from(
            *actual
                .next()
                .expect("as many actual values as expected ones"),
        );
        difference += (a - e) * (a - e);
        norm += e * e;
    }
    assert!(
        actual.next().is_none(),
        "more actual values than expected ones"
    );
    assert!(norm > 0.0, "the reference output is all zeros");
    (difference / norm).sqrt()
}
