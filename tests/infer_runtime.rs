//! Exported models run in ONNX Runtime: outputs against ndarray reference forward passes, the
//! load-time signature checks, run-time input and output checks, provider fallback and library
//! errors. Needs the ONNX Runtime library and the onnx package of `.venv` (`.ci/setup`).

mod onnx_common;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clarify::infer::{
    ExecutionProviderKind, InferConfig, InferError, ModelSignature, Runtime, TensorDim, TensorRole,
    TensorSpec,
};
use clarify::onnx::{
    Constant, Dim, ElementType, GraphBuilder, MlpExportOptions, ModelInfo, ModelProto, write_model,
};
use ndarray::{Array1, Array2, Array3, ArrayD, Axis, Ix2, Slice};
use onnx_common::{
    Uniform, assert_passes_onnx_checker, layer_norm_reference, mlp_reference, random_mlp,
    relative_error, require_onnx_runtime_library, sigmoid, softmax_reference, temp_dir,
};

const TOLERANCE: f64 = 1e-5;

/// Creates a runtime on CPU with one intra-op thread, so the tests leave the machine's other
/// cores alone.
fn cpu_runtime() -> Runtime {
    require_onnx_runtime_library();
    let config = InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    };
    Runtime::new(config).expect("create the ONNX Runtime runtime")
}

/// Writes `model` into a fresh directory for `test`, checks it with the ONNX checker and
/// returns its path.
fn write_checked(model: &ModelProto, test: &str) -> Result<PathBuf> {
    let path = temp_dir(test).join("model.onnx");
    write_model(model, &path)?;
    assert_passes_onnx_checker(&path);
    Ok(path)
}

fn signature(inputs: &[(&str, usize)], outputs: &[(&str, usize)]) -> ModelSignature {
    let specs = |list: &[(&str, usize)]| list.iter().map(|&(n, r)| TensorSpec::new(n, r)).collect();
    ModelSignature {
        inputs: specs(inputs),
        outputs: specs(outputs),
    }
}

fn mlp_signature() -> ModelSignature {
    signature(&[("input", 2)], &[("output", 2)])
}

fn write_mlp(sizes: &[usize], seed: u64, test: &str) -> Result<(clarify::onnx::Mlp, PathBuf)> {
    let mlp = random_mlp(sizes, seed);
    let path = write_checked(&mlp.to_model(&MlpExportOptions::default())?, test)?;
    Ok((mlp, path))
}

fn into_matrix(array: ArrayD<f32>) -> Array2<f32> {
    array.into_dimensionality::<Ix2>().expect("a rank-2 output")
}

#[test]
fn mlp_matches_reference_at_batch_1_and_257() -> Result<()> {
    let (mlp, path) = write_mlp(&[39, 256, 256, 4], 11, "mlp-reference")?;
    let mut model = cpu_runtime().load_model(&path, &mlp_signature())?;
    let mut rng = Uniform::new(12);

    for batch in [1, 257] {
        let input = rng.matrix(batch, 39, -3.0, 3.0);

        let outputs = model.run(&[input.view().into_dyn()])?;

        let output = into_matrix(outputs.into_iter().next().expect("one output"));
        assert_eq!(output.dim(), (batch, 4));
        assert!(output.iter().all(|v| v.is_finite()));
        let error = relative_error(&output, &mlp_reference(&mlp, input.view()));
        assert!(error <= TOLERANCE, "batch {batch}: relative error {error}");
    }
    Ok(())
}

#[test]
fn default_provider_order_falls_back_to_cpu() -> Result<()> {
    require_onnx_runtime_library();
    let (mlp, path) = write_mlp(&[6, 8, 2], 13, "default-providers")?;
    let runtime = Runtime::new(InferConfig::default())?;

    let mut model = runtime.load_model(&path, &mlp_signature())?;
    let input = Uniform::new(14).matrix(3, 6, -1.0, 1.0);
    let output = into_matrix(model.run(&[input.view().into_dyn()])?.remove(0));

    assert_eq!(model.provider(), ExecutionProviderKind::Cpu);
    let error = relative_error(&output, &mlp_reference(&mlp, input.view()));
    assert!(error <= TOLERANCE, "relative error {error}");
    Ok(())
}

#[test]
fn require_gpu_without_gpu_provider_fails() -> Result<()> {
    require_onnx_runtime_library();
    let (_, path) = write_mlp(&[6, 2], 15, "require-gpu")?;
    let config = InferConfig {
        require_gpu: true,
        ..InferConfig::default()
    };

    let result =
        Runtime::new(config).and_then(|runtime| runtime.load_model(&path, &mlp_signature()));

    let error = result.unwrap_err();
    assert!(error.to_string().contains("require_gpu"), "{error}");
    if cfg!(all(feature = "cuda", feature = "tensorrt")) {
        // Both providers are compiled in, but the CPU build of the library has neither.
        assert!(
            matches!(error, InferError::GpuUnavailable { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("CUDAExecutionProvider"),
            "{error}"
        );
        assert!(
            error.to_string().contains("TensorrtExecutionProvider"),
            "{error}"
        );
    } else {
        assert!(
            matches!(error, InferError::ProviderNotCompiled { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--features"), "{error}");
    }
    Ok(())
}

#[test]
fn wrong_input_name_rejected_with_both_names() -> Result<()> {
    let (_, path) = write_mlp(&[5, 3], 16, "wrong-input-name")?;
    let expected = signature(&[("observation", 2)], &[("output", 2)]);

    let error = cpu_runtime().load_model(&path, &expected).unwrap_err();

    assert!(
        matches!(
            error,
            InferError::TensorName {
                role: TensorRole::Input,
                index: 0,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("`input`"), "{message}");
    assert!(message.contains("`observation`"), "{message}");
    assert!(message.contains("model.onnx"), "{message}");
    Ok(())
}

#[test]
fn wrong_output_rank_rejected() -> Result<()> {
    let (_, path) = write_mlp(&[5, 3], 17, "wrong-output-rank")?;
    let expected = signature(&[("input", 2)], &[("output", 3)]);

    let error = cpu_runtime().load_model(&path, &expected).unwrap_err();

    assert!(
        matches!(
            &error,
            InferError::TensorRank { role: TensorRole::Output, name, found: 2, expected: 3, .. }
                if name == "output"
        ),
        "{error}"
    );
    Ok(())
}

#[test]
fn missing_expected_output_rejected() -> Result<()> {
    let (_, path) = write_mlp(&[5, 3], 18, "missing-output")?;
    let expected = signature(&[("input", 2)], &[("output", 2), ("value", 2)]);

    let error = cpu_runtime().load_model(&path, &expected).unwrap_err();

    assert!(matches!(error, InferError::TensorCount { .. }), "{error}");
    assert!(error.to_string().contains("value"), "{error}");
    Ok(())
}

#[test]
fn missing_model_file_rejected() {
    let path = temp_dir("missing-model").join("absent.onnx");

    let error = cpu_runtime()
        .load_model(&path, &mlp_signature())
        .unwrap_err();

    assert!(matches!(error, InferError::ModelLoad { .. }), "{error}");
    assert!(error.to_string().contains("absent.onnx"), "{error}");
}

#[test]
fn run_rejects_wrong_feature_count() -> Result<()> {
    let (_, path) = write_mlp(&[5, 3], 19, "wrong-input-shape")?;
    let mut model = cpu_runtime().load_model(&path, &mlp_signature())?;
    let input = Array2::<f32>::zeros((2, 4));

    let error = model.run(&[input.view().into_dyn()]).unwrap_err();

    assert!(
        matches!(&error, InferError::InputShape { name, found, .. }
            if name == "input" && found == &[2, 4]),
        "{error}"
    );
    assert!(error.to_string().contains("[batch, 5]"), "{error}");
    Ok(())
}

#[test]
fn run_rejects_wrong_input_count() -> Result<()> {
    let (_, path) = write_mlp(&[5, 3], 19, "wrong-input-count")?;
    let mut model = cpu_runtime().load_model(&path, &mlp_signature())?;

    let error = model.run(&[]).unwrap_err();

    assert!(
        matches!(
            error,
            InferError::InputCount {
                found: 0,
                expected: 1,
                ..
            }
        ),
        "{error}"
    );
    Ok(())
}

#[test]
fn transposed_input_view_gives_same_output() -> Result<()> {
    let (_, path) = write_mlp(&[4, 6, 2], 20, "transposed-input")?;
    let mut model = cpu_runtime().load_model(&path, &mlp_signature())?;
    let standard = Uniform::new(21).matrix(3, 4, -1.0, 1.0);
    let column_major = standard.t().to_owned();

    let from_standard = model.run(&[standard.view().into_dyn()])?;
    let from_transposed_view = model.run(&[column_major.t().into_dyn()])?;

    assert_eq!(from_standard, from_transposed_view);
    Ok(())
}

#[test]
fn non_finite_output_reported_with_index() -> Result<()> {
    let mut graph = GraphBuilder::new("ratio", 17)?;
    let x = graph.add_input("x", ElementType::F32, &[Dim::batch(), Dim::Fixed(3)])?;
    let ratio = graph.div(&x, &x)?;
    graph.add_output(
        &ratio,
        "ratio",
        ElementType::F32,
        &[Dim::batch(), Dim::Fixed(3)],
    )?;
    let path = write_checked(&graph.build(&ModelInfo::default())?, "non-finite")?;
    let expected = signature(&[("x", 2)], &[("ratio", 2)]);
    let mut model = cpu_runtime().load_model(&path, &expected)?;
    let input = ndarray::array![[1.0_f32, 2.0, 4.0], [3.0, 0.0, 5.0]];

    let error = model.run(&[input.view().into_dyn()]).unwrap_err();

    assert!(
        matches!(&error, InferError::NonFiniteOutput { output, index, value, .. }
            if output == "ratio" && index == &[1, 1] && value.is_nan()),
        "{error}"
    );
    Ok(())
}

/// Input `x: [batch, 8]` → `Gemm` to 16 features → `LayerNormalization` → `Softmax`, then
/// `Concat` with `Sigmoid(x)` to `features: [batch, 24]`.
struct NormalizedFeatures {
    weight: Vec<f32>,
    bias: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

const EPSILON: f32 = 1e-5;

impl NormalizedFeatures {
    fn random(seed: u64) -> Self {
        let mut rng = Uniform::new(seed);
        Self {
            weight: rng.vector(8 * 16, -0.5, 0.5),
            bias: rng.vector(16, -0.5, 0.5),
            scale: rng.vector(16, 0.5, 1.5),
            shift: rng.vector(16, -0.5, 0.5),
        }
    }

    fn to_model(&self) -> Result<ModelProto> {
        let mut graph = GraphBuilder::new("normalized_features", 17)?;
        let x = graph.add_input("x", ElementType::F32, &[Dim::batch(), Dim::Fixed(8)])?;
        let weight = Constant::f32("weight", &[8, 16], self.weight.clone())?;
        let bias = Constant::f32("bias", &[16], self.bias.clone())?;
        let hidden = graph.gemm(&x, "dense", &weight, &bias)?;
        let scale = Constant::f32("scale", &[16], self.scale.clone())?;
        let shift = Constant::f32("shift", &[16], self.shift.clone())?;
        let normalized = graph.layer_norm(&hidden, "norm", &scale, &shift, EPSILON)?;
        let probabilities = graph.softmax(&normalized, -1)?;
        let gates = graph.sigmoid(&x)?;
        let features = graph.concat(&[&probabilities, &gates], 1)?;
        let output_dims = [Dim::batch(), Dim::Fixed(24)];
        graph.add_output(&features, "features", ElementType::F32, &output_dims)?;
        Ok(graph.build(&ModelInfo::default())?)
    }

    fn reference(&self, x: &Array2<f32>) -> Array2<f64> {
        let x = x.mapv(f64::from);
        let weight = Array2::from_shape_vec((8, 16), self.weight.clone())
            .unwrap()
            .mapv(f64::from);
        let bias = Array1::from(self.bias.clone()).mapv(f64::from);
        let hidden = x.dot(&weight) + &bias;
        let normalized =
            layer_norm_reference(&hidden, &self.scale, &self.shift, f64::from(EPSILON));
        let probabilities = softmax_reference(&normalized);
        let gates = x.mapv(sigmoid);
        ndarray::concatenate(Axis(1), &[probabilities.view(), gates.view()]).unwrap()
    }
}

#[test]
fn layer_norm_softmax_concat_match_reference() -> Result<()> {
    let network = NormalizedFeatures::random(22);
    let path = write_checked(&network.to_model()?, "layer-norm-softmax-concat")?;
    let expected = signature(&[("x", 2)], &[("features", 2)]);
    let mut model = cpu_runtime().load_model(&path, &expected)?;
    let mut rng = Uniform::new(23);

    for batch in [1, 257] {
        let input = rng.matrix(batch, 8, -2.0, 2.0);

        let output = into_matrix(model.run(&[input.view().into_dyn()])?.remove(0));

        assert_eq!(output.dim(), (batch, 24));
        let error = relative_error(&output, &network.reference(&input));
        assert!(error <= TOLERANCE, "batch {batch}: relative error {error}");
    }
    Ok(())
}

/// A graph over `x: [batch, 4, 6]` that uses the remaining layer helpers, one output each:
/// Transpose + Slice, ReduceMean + Sub + Mul + Div, ReduceSum, Gather + Reshape, and the
/// MatMul + Add linear layer followed by Relu.
struct ShapeOps {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

const GATHER_INDICES: [i64; 2] = [3, 0];

impl ShapeOps {
    fn to_model(&self, opset: i64) -> Result<ModelProto> {
        let mut graph = GraphBuilder::new("shape_ops", opset)?;
        let batch = Dim::batch;
        let x = graph.add_input(
            "x",
            ElementType::F32,
            &[batch(), Dim::Fixed(4), Dim::Fixed(6)],
        )?;

        let transposed = graph.transpose(&x, &[0, 2, 1])?;
        let sliced = graph.slice(&transposed, &[1], &[5], &[1], &[2])?;
        let dims = [batch(), Dim::Fixed(2), Dim::Fixed(4)];
        graph.add_output(&sliced, "sliced", ElementType::F32, &dims)?;

        let mean = graph.reduce_mean(&x, &[1], true)?;
        let centered = graph.sub(&x, &mean)?;
        let product = graph.mul(&centered, &x)?;
        let two = graph.add_constant("two", &Constant::f32("two", &[1], vec![2.0])?)?;
        let halved = graph.div(&product, &two)?;
        let dims = [batch(), Dim::Fixed(4), Dim::Fixed(6)];
        graph.add_output(&halved, "centered_product", ElementType::F32, &dims)?;

        let sums = graph.reduce_sum(&x, &[2], false)?;
        graph.add_output(
            &sums,
            "row_sums",
            ElementType::F32,
            &[batch(), Dim::Fixed(4)],
        )?;

        let indices = Constant::i64("indices", &[2], GATHER_INDICES.to_vec())?;
        let indices = graph.add_constant("indices", &indices)?;
        let gathered = graph.gather(&x, &indices, 1)?;
        let flattened = graph.reshape(&gathered, &[0, 12])?;
        graph.add_output(
            &flattened,
            "gathered",
            ElementType::F32,
            &[batch(), Dim::Fixed(12)],
        )?;

        let weight = Constant::f32("weight", &[6, 3], self.weight.clone())?;
        let bias = Constant::f32("bias", &[3], self.bias.clone())?;
        let projected = graph.linear(&x, "proj", &weight, &bias)?;
        let activated = graph.relu(&projected)?;
        let dims = [batch(), Dim::Fixed(4), Dim::Fixed(3)];
        graph.add_output(&activated, "projected", ElementType::F32, &dims)?;

        Ok(graph.build(&ModelInfo::default())?)
    }

    fn signature() -> ModelSignature {
        signature(
            &[("x", 3)],
            &[
                ("sliced", 3),
                ("centered_product", 3),
                ("row_sums", 2),
                ("gathered", 2),
                ("projected", 3),
            ],
        )
    }

    fn reference(&self, x: &Array3<f32>) -> Vec<ArrayD<f64>> {
        let x = x.mapv(f64::from);
        let batch = x.dim().0;

        let transposed = x.view().permuted_axes([0, 2, 1]);
        let sliced = transposed
            .slice_axis(Axis(1), Slice::new(1, Some(5), 2))
            .to_owned();

        let mean = x.mean_axis(Axis(1)).unwrap().insert_axis(Axis(1));
        let halved = (&x - &mean) * &x / 2.0;

        let sums = x.sum_axis(Axis(2));

        let rows: Vec<usize> = GATHER_INDICES.iter().map(|&i| i as usize).collect();
        let gathered = x.select(Axis(1), &rows);
        let flattened = gathered
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((batch, 12))
            .unwrap();

        let weight = Array2::from_shape_vec((6, 3), self.weight.clone())
            .unwrap()
            .mapv(f64::from);
        let bias = Array1::from(self.bias.clone()).mapv(f64::from);
        let mut projected = Array3::zeros((batch, 4, 3));
        for (mut out, row) in projected.outer_iter_mut().zip(x.outer_iter()) {
            out.assign(&(row.dot(&weight) + &bias));
        }
        projected.mapv_inplace(|v| v.max(0.0));

        vec![
            sliced.into_dyn(),
            halved.into_dyn(),
            sums.into_dyn(),
            flattened.into_dyn(),
            projected.into_dyn(),
        ]
    }
}

#[test]
fn shape_ops_match_reference() -> Result<()> {
    let mut rng = Uniform::new(24);
    let network = ShapeOps {
        weight: rng.vector(18, -1.0, 1.0),
        bias: rng.vector(3, -0.5, 0.5),
    };
    let names = [
        "sliced",
        "centered_product",
        "row_sums",
        "gathered",
        "projected",
    ];

    for opset in [17, 18] {
        let path = write_checked(&network.to_model(opset)?, &format!("shape-ops-{opset}"))?;
        let mut model = cpu_runtime().load_model(&path, &ShapeOps::signature())?;
        let input = Array3::from_shape_vec((5, 4, 6), rng.vector(120, -2.0, 2.0))?;

        let outputs = model.run(&[input.view().into_dyn()])?;

        let references = network.reference(&input);
        for ((output, reference), name) in outputs.iter().zip(&references).zip(names) {
            assert_eq!(output.shape(), reference.shape(), "opset {opset}, {name}");
            let error = relative_error(output, reference);
            assert!(
                error <= TOLERANCE,
                "opset {opset}, {name}: relative error {error}"
            );
        }
    }
    Ok(())
}

#[test]
fn tensor_info_reports_symbolic_batch() -> Result<()> {
    let network = ShapeOps {
        weight: vec![0.5; 18],
        bias: vec![0.0; 3],
    };
    let path = write_checked(&network.to_model(17)?, "tensor-info")?;

    let model = cpu_runtime().load_model(&path, &ShapeOps::signature())?;

    assert_eq!(model.inputs()[0].to_string(), "x: [batch, 4, 6]");
    assert_eq!(model.outputs()[3].to_string(), "gathered: [batch, 12]");
    assert_eq!(
        model.outputs()[4].dims,
        [
            TensorDim::Dynamic("batch".to_owned()),
            TensorDim::Fixed(4),
            TensorDim::Fixed(3)
        ]
    );
    Ok(())
}

/// The node runs inference on worker threads, so a type that loses `Send` or `Sync` fails to
/// compile here.
#[test]
fn runtime_and_model_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}

    assert_send_sync::<Runtime>();
    assert_send_sync::<clarify::infer::Model>();
    assert_send_sync::<InferError>();
}

#[test]
fn missing_configured_library_names_path() {
    let path = temp_dir("missing-library").join("libonnxruntime.so.1.31.1");
    let config = InferConfig {
        library_path: Some(path.clone()),
        ..InferConfig::default()
    };

    let error = Runtime::new(config).unwrap_err();

    assert!(
        matches!(error, InferError::LibraryNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("library_path"), "{message}");
    assert!(
        message.contains("pip install onnxruntime==1.31.1"),
        "{message}"
    );
}

#[test]
fn library_with_other_version_rejected() -> Result<()> {
    let path = temp_dir("library-1-30").join("libonnxruntime.so.1.30.0");
    fs::write(&path, b"not a library")?;
    let config = InferConfig {
        library_path: Some(path),
        ..InferConfig::default()
    };

    let error = Runtime::new(config).unwrap_err();

    assert!(
        matches!(&error, InferError::LibraryVersion { found, .. } if found == "1.30.0"),
        "{error}"
    );
    assert!(
        error.to_string().contains("onnxruntime-gpu==1.31.1"),
        "{error}"
    );
    Ok(())
}

#[test]
fn second_library_path_rejected() -> Result<()> {
    let runtime = cpu_runtime();
    let loaded = runtime.library().path.clone();
    let other = temp_dir("second-library").join(loaded.file_name().expect("library file name"));
    link_or_copy(&loaded, &other)?;
    let config = InferConfig {
        library_path: Some(other.clone()),
        ..InferConfig::default()
    };

    let error = Runtime::new(config).unwrap_err();

    assert!(
        matches!(error, InferError::LibraryConflict { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&loaded.display().to_string()),
        "{error}"
    );
    assert!(
        error.to_string().contains(&other.display().to_string()),
        "{error}"
    );
    Ok(())
}

/// Hard-links `from` to `to`, or copies it when the temporary folder is on another file system.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::hard_link(from, to).or_else(|_| fs::copy(from, to).map(|_| ()))
}
