//! A multilayer perceptron description and its export to an ONNX model.

use super::error::ExportError;
use super::graph::{Constant, Dim, ElementType, GraphBuilder, ModelInfo, Value};
use super::proto::ModelProto;

/// Activation applied after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// `x` for `x ≥ 0`, `alpha · x` otherwise.
    LeakyRelu {
        alpha: f32,
    },
    Tanh,
    Sigmoid,
}

/// One dense layer `y = activation(x · weight + bias)`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// Row-major `[in_features, out_features]`.
    pub weight: Vec<f32>,
    /// `[out_features]`.
    pub bias: Vec<f32>,
    pub activation: Activation,
}

/// Per-feature input standardization `(x − mean) / std`, computed inside the exported graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization {
    pub mean: Vec<f32>,
    /// Every entry must be finite and greater than zero.
    pub std: Vec<f32>,
}

/// A multilayer perceptron: `sizes[i]` features enter layer `i` and `sizes[i + 1]` leave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Feature counts from input to output, with one more entry than `layers`.
    pub sizes: Vec<usize>,
    pub layers: Vec<DenseLayer>,
    /// Standardization applied to the input before the first layer.
    pub input_standardization: Option<Standardization>,
    /// Whether `tanh` is applied to the output after the last layer's activation (a policy's
    /// action squashing).
    pub output_tanh: bool,
}

/// Names and descriptive fields of an exported MLP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpExportOptions {
    pub graph_name: String,
    /// Name of the `[batch, sizes[0]]` f32 input.
    pub input_name: String,
    /// Name of the `[batch, sizes[last]]` f32 output.
    pub output_name: String,
    pub opset: i64,
    pub info: ModelInfo,
}

impl Default for MlpExportOptions {
    /// Graph "mlp", input "input", output "output", the default opset and [`ModelInfo`].
    fn default() -> Self {
        Self {
            graph_name: "mlp".to_owned(),
            input_name: "input".to_owned(),
            output_name: "output".to_owned(),
            opset: super::DEFAULT_OPSET,
            info: ModelInfo::default(),
        }
    }
}

impl Mlp {
    /// Exports the MLP as a model with a symbolic batch axis. Layer `i` stores its parameters
    /// as the initializers `layers.{i}.weight` and `layers.{i}.bias`.
    pub fn to_model(&self, options: &MlpExportOptions) -> Result<ModelProto, ExportError> {
        self.check_layer_count()?;
        let mut graph = GraphBuilder::new(&options.graph_name, options.opset)?;
        let input_dims = [Dim::batch(), Dim::Fixed(self.sizes[0])];
        let mut x = graph.add_input(&options.input_name, ElementType::F32, &input_dims)?;

        if let Some(standardization) = &self.input_standardization {
            x = self.add_standardization(&mut graph, &x, standardization)?;
        }
        for (index, layer) in self.layers.iter().enumerate() {
            x = self.add_dense_layer(&mut graph, &x, index, layer)?;
        }
        if self.output_tanh {
            x = graph.tanh(&x)?;
        }

        let output_size = self.sizes[self.sizes.len() - 1];
        let output_dims = [Dim::batch(), Dim::Fixed(output_size)];
        graph.add_output(&x, &options.output_name, ElementType::F32, &output_dims)?;
        graph.build(&options.info)
    }

    fn check_layer_count(&self) -> Result<(), ExportError> {
        if self.layers.is_empty() || self.sizes.len() != self.layers.len() + 1 {
            return Err(ExportError::InvalidParameter {
                parameter: "MLP shape (sizes, layers)".to_owned(),
                value: format!("{} sizes, {} layers", self.sizes.len(), self.layers.len()),
                expected: "at least one layer and one more size than layers",
            });
        }
        if let Some(index) = self.sizes.iter().position(|&size| size == 0) {
            return Err(ExportError::InvalidParameter {
                parameter: format!("MLP sizes[{index}]"),
                value: "0".to_owned(),
                expected: "at least 1 feature",
            });
        }
        Ok(())
    }

    fn add_standardization(
        &self,
        graph: &mut GraphBuilder,
        x: &Value,
        standardization: &Standardization,
    ) -> Result<Value, ExportError> {
        let features = self.sizes[0];
        let mean = Constant::f32("input.mean", &[features], standardization.mean.clone())?;
        let std = Constant::f32("input.std", &[features], standardization.std.clone())?;
        if let Some(index) = standardization.std.iter().position(|&s| s <= 0.0) {
            return Err(ExportError::InvalidParameter {
                parameter: format!("input standardization std[{index}]"),
                value: standardization.std[index].to_string(),
                expected: "a value > 0",
            });
        }
        let mean = graph.add_initializer("input.mean", &mean)?;
        let std = graph.add_initializer("input.std", &std)?;
        let centered = graph.sub(x, &mean)?;
        graph.div(&centered, &std)
    }

    fn add_dense_layer(
        &self,
        graph: &mut GraphBuilder,
        x: &Value,
        index: usize,
        layer: &DenseLayer,
    ) -> Result<Value, ExportError> {
        let name = format!("layers.{index}");
        let (in_features, out_features) = (self.sizes[index], self.sizes[index + 1]);
        let weight = Constant::f32(
            &format!("{name}.weight"),
            &[in_features, out_features],
            layer.weight.clone(),
        )?;
        let bias = Constant::f32(&format!("{name}.bias"), &[out_features], layer.bias.clone())?;
        let y = graph.gemm(x, &name, &weight, &bias)?;
        match layer.activation {
            Activation::Identity => Ok(y),
            Activation::Relu => graph.relu(&y),
            Activation::LeakyRelu { alpha } => graph.leaky_relu(&y, alpha),
            Activation::Tanh => graph.tanh(&y),
            Activation::Sigmoid => graph.sigmoid(&y),
        }
    }
}
