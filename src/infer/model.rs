//! A loaded ONNX model with checked inputs and outputs.

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, CowArray, Dimension, IxDyn};
use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};

use super::config::{ExecutionProviderKind, InferConfig};
use super::error::{InferError, TensorRole};
use super::providers::register_providers;

/// Element type of a model input or output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TensorElement {
    #[default]
    F32,
    I64,
}

impl TensorElement {
    fn as_str(self) -> &'static str {
        match self {
            TensorElement::F32 => "an f32 tensor",
            TensorElement::I64 => "an i64 tensor",
        }
    }

    fn ort_type(self) -> TensorElementType {
        match self {
            TensorElement::F32 => TensorElementType::Float32,
            TensorElement::I64 => TensorElementType::Int64,
        }
    }
}

/// Name, rank and element type of a model input or output that the caller expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub rank: usize,
    pub element: TensorElement,
}

impl TensorSpec {
    /// Creates a spec of an f32 tensor named `name` with `rank` axes.
    pub fn new(name: impl Into<String>, rank: usize) -> Self {
        Self {
            name: name.into(),
            rank,
            element: TensorElement::F32,
        }
    }

    /// Creates a spec of an i64 tensor named `name` with `rank` axes. Only inputs may be
    /// i64: [`Model::run_mixed`] returns f32 outputs.
    pub fn i64(name: impl Into<String>, rank: usize) -> Self {
        Self {
            name: name.into(),
            rank,
            element: TensorElement::I64,
        }
    }
}

/// One input array of [`Model::run_mixed`].
#[derive(Clone, Debug)]
pub enum InputArray<'a> {
    F32(ArrayViewD<'a, f32>),
    I64(ArrayViewD<'a, i64>),
}

impl InputArray<'_> {
    fn element(&self) -> TensorElement {
        match self {
            InputArray::F32(_) => TensorElement::F32,
            InputArray::I64(_) => TensorElement::I64,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            InputArray::F32(array) => array.shape(),
            InputArray::I64(array) => array.shape(),
        }
    }
}

impl<'a> From<ArrayViewD<'a, f32>> for InputArray<'a> {
    fn from(array: ArrayViewD<'a, f32>) -> Self {
        InputArray::F32(array)
    }
}

impl<'a> From<ArrayViewD<'a, i64>> for InputArray<'a> {
    fn from(array: ArrayViewD<'a, i64>) -> Self {
        InputArray::I64(array)
    }
}

/// The inputs and outputs, in order, that the caller expects a model to have. Outputs must
/// be f32.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One axis of a model tensor as ONNX Runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorDim {
    Fixed(usize),
    /// A size chosen at run time, with its symbolic name (empty when the model gives none).
    Dynamic(String),
}

/// Name and shape of a model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<TensorDim>,
}

impl fmt::Display for TensorInfo {
    /// Formats as `obs: [batch, 39]`, with `?` for an unnamed dynamic axis.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, format_dims(&self.dims))
    }
}

fn format_dims(dims: &[TensorDim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|dim| match dim {
            TensorDim::Fixed(size) => size.to_string(),
            TensorDim::Dynamic(name) if name.is_empty() => "?".to_owned(),
            TensorDim::Dynamic(name) => name.clone(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn format_tensors(tensors: &[TensorInfo]) -> String {
    let parts: Vec<String> = tensors.iter().map(ToString::to_string).collect();
    parts.join(", ")
}

/// An ONNX model loaded into an ONNX Runtime session.
///
/// The session's inputs and outputs matched the [`ModelSignature`] given at load time, so
/// [`Model::run`] takes and returns arrays in the signature's order.
pub struct Model {
    path: PathBuf,
    session: Session,
    provider: ExecutionProviderKind,
    inputs: Vec<TensorInfo>,
    /// Element type of each input, in signature order.
    input_elements: Vec<TensorElement>,
    outputs: Vec<TensorInfo>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl Model {
    pub(crate) fn load(
        environment: &Environment,
        config: &InferConfig,
        path: &Path,
        signature: &ModelSignature,
    ) -> Result<Self, InferError> {
        let load_error = |source: ort::Error| InferError::ModelLoad {
            model: path.to_path_buf(),
            source,
        };
        let mut builder = Session::builder(environment).map_err(load_error)?;
        if config.intra_op_threads > 0 {
            builder = builder
                .with_intra_threads(config.intra_op_threads)
                .map_err(|error| load_error(error.into()))?;
        }
        let provider = register_providers(&mut builder, config, path)?;
        let session = builder.commit_from_file(path).map_err(load_error)?;

        let inputs = check_tensors(path, TensorRole::Input, session.inputs(), &signature.inputs)?;
        let outputs = check_tensors(
            path,
            TensorRole::Output,
            session.outputs(),
            &signature.outputs,
        )?;
        tracing::info!(
            model = %path.display(),
            %provider,
            inputs = %format_tensors(&inputs),
            outputs = %format_tensors(&outputs),
            "loaded ONNX model"
        );
        Ok(Self {
            path: path.to_path_buf(),
            session,
            provider,
            inputs,
            input_elements: signature.inputs.iter().map(|spec| spec.element).collect(),
            outputs,
        })
    }

    /// Returns the model file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the execution provider that runs the model: the first GPU provider that
    /// registered, or `Cpu` when none did.
    pub fn provider(&self) -> ExecutionProviderKind {
        self.provider
    }

    /// Returns the model's inputs, in signature order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// Returns the model's outputs, in signature order.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Runs the model on f32 `inputs` (one array per signature input, in order) and returns
    /// the outputs in signature order. Fixed axes of the inputs must match the model, and
    /// every output value must be finite.
    pub fn run(&mut self, inputs: &[ArrayViewD<'_, f32>]) -> Result<Vec<ArrayD<f32>>, InferError> {
        let inputs: Vec<InputArray<'_>> = inputs.iter().cloned().map(InputArray::F32).collect();
        self.run_mixed(&inputs)
    }

    /// Runs the model like [`Model::run`] on inputs of the element types of the signature,
    /// f32 and i64 mixed.
    pub fn run_mixed(&mut self, inputs: &[InputArray<'_>]) -> Result<Vec<ArrayD<f32>>, InferError> {
        if inputs.len() != self.inputs.len() {
            return Err(InferError::InputCount {
                model: self.path.clone(),
                found: inputs.len(),
                expected: self.inputs.len(),
            });
        }
        for ((array, info), &element) in inputs.iter().zip(&self.inputs).zip(&self.input_elements) {
            if array.element() != element {
                return Err(InferError::InputType {
                    model: self.path.clone(),
                    name: info.name.clone(),
                    found: array.element().as_str(),
                    expected: element.as_str(),
                });
            }
            self.check_input_shape(array.shape(), info)?;
        }

        let run_error = |path: &Path, source: ort::Error| InferError::Run {
            model: path.to_path_buf(),
            source,
        };
        // ONNX Runtime reads row-major memory, so other layouts are copied first. Standard-layout
        // arrays are passed without a copy.
        let contiguous: Vec<ContiguousInput<'_>> = inputs
            .iter()
            .map(|array| match array {
                InputArray::F32(array) => ContiguousInput::F32(array.as_standard_layout()),
                InputArray::I64(array) => ContiguousInput::I64(array.as_standard_layout()),
            })
            .collect();
        let mut values = Vec::with_capacity(contiguous.len());
        for array in &contiguous {
            let value = match array {
                ContiguousInput::F32(array) => SessionInputValue::from(
                    TensorRef::from_array_view(array).map_err(|e| run_error(&self.path, e))?,
                ),
                ContiguousInput::I64(array) => SessionInputValue::from(
                    TensorRef::from_array_view(array).map_err(|e| run_error(&self.path, e))?,
                ),
            };
            values.push(value);
        }
        let outputs = self
            .session
            .run(values.as_slice())
            .map_err(|e| run_error(&self.path, e))?;

        let mut results = Vec::with_capacity(self.outputs.len());
        for info in &self.outputs {
            let array = outputs[info.name.as_str()]
                .try_extract_array::<f32>()
                .map_err(|e| run_error(&self.path, e))?
                .to_owned();
            check_finite(&self.path, &info.name, &array)?;
            results.push(array);
        }
        Ok(results)
    }

    fn check_input_shape(&self, shape: &[usize], info: &TensorInfo) -> Result<(), InferError> {
        let matches = shape.len() == info.dims.len()
            && shape.iter().zip(&info.dims).all(|(&size, dim)| match dim {
                TensorDim::Fixed(expected) => size == *expected,
                TensorDim::Dynamic(_) => true,
            });
        if matches {
            return Ok(());
        }
        Err(InferError::InputShape {
            model: self.path.clone(),
            name: info.name.clone(),
            found: shape.to_vec(),
            expected: format_dims(&info.dims),
        })
    }
}

/// An input in row-major layout, borrowed when it already was.
enum ContiguousInput<'a> {
    F32(CowArray<'a, f32, IxDyn>),
    I64(CowArray<'a, i64, IxDyn>),
}

fn check_tensors(
    model: &Path,
    role: TensorRole,
    outlets: &[Outlet],
    expected: &[TensorSpec],
) -> Result<Vec<TensorInfo>, InferError> {
    if outlets.len() != expected.len() {
        return Err(InferError::TensorCount {
            model: model.to_path_buf(),
            role,
            found: outlets.iter().map(|o| o.name().to_owned()).collect(),
            expected: expected.iter().map(|s| s.name.clone()).collect(),
        });
    }
    let mut tensors = Vec::with_capacity(outlets.len());
    for (index, (outlet, spec)) in outlets.iter().zip(expected).enumerate() {
        if outlet.name() != spec.name {
            return Err(InferError::TensorName {
                model: model.to_path_buf(),
                role,
                index,
                found: outlet.name().to_owned(),
                expected: spec.name.clone(),
            });
        }
        let expected_type = match role {
            TensorRole::Input => spec.element,
            TensorRole::Output => TensorElement::F32,
        };
        let dims = match outlet.dtype() {
            ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } if *ty == expected_type.ort_type() => tensor_dims(shape, dimension_symbols),
            other => {
                return Err(InferError::TensorType {
                    model: model.to_path_buf(),
                    role,
                    name: spec.name.clone(),
                    found: other.to_string(),
                    expected: expected_type.as_str(),
                });
            }
        };
        if dims.len() != spec.rank {
            return Err(InferError::TensorRank {
                model: model.to_path_buf(),
                role,
                name: spec.name.clone(),
                found: dims.len(),
                expected: spec.rank,
            });
        }
        tensors.push(TensorInfo {
            name: spec.name.clone(),
            dims,
        });
    }
    Ok(tensors)
}

/// ONNX Runtime reports a dynamic axis as −1 with its symbol (possibly empty) alongside.
fn tensor_dims(shape: &[i64], symbols: &[String]) -> Vec<TensorDim> {
    shape
        .iter()
        .enumerate()
        .map(|(axis, &size)| match usize::try_from(size) {
            Ok(size) => TensorDim::Fixed(size),
            Err(_) => TensorDim::Dynamic(symbols.get(axis).cloned().unwrap_or_default()),
        })
        .collect()
}

fn check_finite(model: &Path, output: &str, array: &ArrayD<f32>) -> Result<(), InferError> {
    match array.indexed_iter().find(|(_, value)| !value.is_finite()) {
        None => Ok(()),
        Some((index, &value)) => Err(InferError::NonFiniteOutput {
            model: model.to_path_buf(),
            output: output.to_owned(),
            index: index.slice().to_vec(),
            value,
        }),
    }
}
