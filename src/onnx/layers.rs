//! Operator helpers on [`GraphBuilder`] for the layers of the exported networks.
//!
//! Each helper adds one node (two for [`GraphBuilder::linear`]) plus the constant operands it
//! needs, and returns the node's output. Weights of linear layers are row-major
//! `[in_features, out_features]`, so a layer computes `y = x · W + b`.

use super::error::ExportError;
use super::graph::{Attribute, Constant, GraphBuilder, Value};

impl GraphBuilder {
    /// Adds initializers `{name}.weight` (`[in_features, out_features]`) and `{name}.bias`
    /// (`[out_features]`) and a `Gemm` node computing `x · weight + bias`. `Gemm` needs a
    /// two-dimensional `x`, so use [`GraphBuilder::linear`] for inputs of higher rank.
    pub fn gemm(
        &mut self,
        x: &Value,
        name: &str,
        weight: &Constant,
        bias: &Constant,
    ) -> Result<Value, ExportError> {
        let (weight, bias) = self.add_linear_parameters(name, weight, bias)?;
        self.add_node("Gemm", &[x, &weight, &bias], Vec::new())
    }

    /// Adds initializers like [`GraphBuilder::gemm`] and a `MatMul` plus an `Add` node, which
    /// accept `x` of any rank ≥ 2 (`[batch, tokens, in_features]`, for example).
    pub fn linear(
        &mut self,
        x: &Value,
        name: &str,
        weight: &Constant,
        bias: &Constant,
    ) -> Result<Value, ExportError> {
        let (weight, bias) = self.add_linear_parameters(name, weight, bias)?;
        let product = self.add_node("MatMul", &[x, &weight], Vec::new())?;
        self.add_node("Add", &[&product, &bias], Vec::new())
    }

    fn add_linear_parameters(
        &mut self,
        name: &str,
        weight: &Constant,
        bias: &Constant,
    ) -> Result<(Value, Value), ExportError> {
        let &[_in_features, out_features] = weight.dims() else {
            return Err(ExportError::InvalidParameter {
                parameter: format!("`{name}.weight` dims"),
                value: format!("{:?}", weight.dims()),
                expected: "two dims [in_features, out_features]",
            });
        };
        if bias.dims() != [out_features] {
            return Err(ExportError::InvalidParameter {
                parameter: format!("`{name}.bias` dims"),
                value: format!("{:?}", bias.dims()),
                expected: "one dim equal to the weight's out_features",
            });
        }
        let weight = self.add_initializer(&format!("{name}.weight"), weight)?;
        let bias = self.add_initializer(&format!("{name}.bias"), bias)?;
        Ok((weight, bias))
    }

    /// Adds `Relu`.
    pub fn relu(&mut self, x: &Value) -> Result<Value, ExportError> {
        self.add_node("Relu", &[x], Vec::new())
    }

    /// Adds `LeakyRelu` with negative slope `alpha`.
    pub fn leaky_relu(&mut self, x: &Value, alpha: f32) -> Result<Value, ExportError> {
        check_finite("LeakyRelu alpha", alpha)?;
        self.add_node("LeakyRelu", &[x], vec![Attribute::float("alpha", alpha)])
    }

    /// Adds `Tanh`.
    pub fn tanh(&mut self, x: &Value) -> Result<Value, ExportError> {
        self.add_node("Tanh", &[x], Vec::new())
    }

    /// Adds `Sigmoid`.
    pub fn sigmoid(&mut self, x: &Value) -> Result<Value, ExportError> {
        self.add_node("Sigmoid", &[x], Vec::new())
    }

    /// Adds initializers `{name}.scale` and `{name}.bias` and a `LayerNormalization` node that
    /// normalizes over the last axis: `(x − mean) / sqrt(var + epsilon) · scale + bias`, with
    /// the population variance. Needs opset 17 or newer, which every supported opset is.
    pub fn layer_norm(
        &mut self,
        x: &Value,
        name: &str,
        scale: &Constant,
        bias: &Constant,
        epsilon: f32,
    ) -> Result<Value, ExportError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(ExportError::InvalidParameter {
                parameter: format!("`{name}` epsilon"),
                value: epsilon.to_string(),
                expected: "a finite value > 0",
            });
        }
        if scale.dims().len() != 1 || bias.dims() != scale.dims() {
            return Err(ExportError::InvalidParameter {
                parameter: format!("`{name}` scale and bias dims"),
                value: format!("{:?} and {:?}", scale.dims(), bias.dims()),
                expected: "both one dim equal to the normalized axis",
            });
        }
        let scale = self.add_initializer(&format!("{name}.scale"), scale)?;
        let bias = self.add_initializer(&format!("{name}.bias"), bias)?;
        let attributes = vec![
            Attribute::int("axis", -1),
            Attribute::float("epsilon", epsilon),
        ];
        self.add_node("LayerNormalization", &[x, &scale, &bias], attributes)
    }

    /// Adds `Softmax` over `axis`.
    pub fn softmax(&mut self, x: &Value, axis: i64) -> Result<Value, ExportError> {
        self.add_node("Softmax", &[x], vec![Attribute::int("axis", axis)])
    }

    /// Adds `Concat` of `inputs` along `axis`.
    pub fn concat(&mut self, inputs: &[&Value], axis: i64) -> Result<Value, ExportError> {
        if inputs.is_empty() {
            return Err(ExportError::InvalidParameter {
                parameter: "Concat input count".to_owned(),
                value: "0".to_owned(),
                expected: "at least one input",
            });
        }
        self.add_node("Concat", inputs, vec![Attribute::int("axis", axis)])
    }

    /// Adds `Reshape` to `shape` (0 copies the input's size on that axis, −1 infers one axis).
    pub fn reshape(&mut self, x: &Value, shape: &[i64]) -> Result<Value, ExportError> {
        let shape = self.add_constant("shape", &Constant::i64_vector(shape))?;
        self.add_node("Reshape", &[x, &shape], Vec::new())
    }

    /// Adds `Transpose` with the axis permutation `perm`.
    pub fn transpose(&mut self, x: &Value, perm: &[i64]) -> Result<Value, ExportError> {
        self.add_node("Transpose", &[x], vec![Attribute::ints("perm", perm)])
    }

    /// Adds `Slice` taking `starts[i]..ends[i]` with step `steps[i]` on axis `axes[i]`.
    pub fn slice(
        &mut self,
        x: &Value,
        starts: &[i64],
        ends: &[i64],
        axes: &[i64],
        steps: &[i64],
    ) -> Result<Value, ExportError> {
        let count = starts.len();
        if ends.len() != count || axes.len() != count || steps.len() != count {
            return Err(ExportError::InvalidParameter {
                parameter: "Slice operand lengths (starts, ends, axes, steps)".to_owned(),
                value: format!("{count}, {}, {}, {}", ends.len(), axes.len(), steps.len()),
                expected: "four equal lengths",
            });
        }
        if let Some(&zero_step) = steps.iter().find(|&&step| step == 0) {
            return Err(ExportError::InvalidParameter {
                parameter: "Slice step".to_owned(),
                value: zero_step.to_string(),
                expected: "a non-zero step",
            });
        }
        let starts = self.add_constant("starts", &Constant::i64_vector(starts))?;
        let ends = self.add_constant("ends", &Constant::i64_vector(ends))?;
        let axes = self.add_constant("axes", &Constant::i64_vector(axes))?;
        let steps = self.add_constant("steps", &Constant::i64_vector(steps))?;
        self.add_node("Slice", &[x, &starts, &ends, &axes, &steps], Vec::new())
    }

    /// Adds `Gather` of the entries of `x` at `indices` (an int64 value) along `axis`.
    pub fn gather(&mut self, x: &Value, indices: &Value, axis: i64) -> Result<Value, ExportError> {
        self.add_node("Gather", &[x, indices], vec![Attribute::int("axis", axis)])
    }

    /// Adds `Add` (elementwise, with numpy broadcasting).
    pub fn add(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.add_node("Add", &[a, b], Vec::new())
    }

    /// Adds `Sub` (elementwise `a − b`, with numpy broadcasting).
    pub fn sub(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.add_node("Sub", &[a, b], Vec::new())
    }

    /// Adds `Mul` (elementwise, with numpy broadcasting).
    pub fn mul(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.add_node("Mul", &[a, b], Vec::new())
    }

    /// Adds `Div` (elementwise `a / b`, with numpy broadcasting).
    pub fn div(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.add_node("Div", &[a, b], Vec::new())
    }

    /// Adds `ReduceMean` over `axes`. Opset 18 moved the axes from an attribute to an input, and
    /// the helper writes the form of the graph's opset.
    pub fn reduce_mean(
        &mut self,
        x: &Value,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Value, ExportError> {
        if self.opset() < 18 {
            let attributes = vec![
                Attribute::ints("axes", axes),
                Attribute::int("keepdims", i64::from(keep_dims)),
            ];
            return self.add_node("ReduceMean", &[x], attributes);
        }
        self.reduce_with_axes_input("ReduceMean", x, axes, keep_dims)
    }

    /// Adds `ReduceSum` over `axes` (an input since opset 13).
    pub fn reduce_sum(
        &mut self,
        x: &Value,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Value, ExportError> {
        self.reduce_with_axes_input("ReduceSum", x, axes, keep_dims)
    }

    /// Adds `MatMul` of two graph values (numpy-style batched matrix product).
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.add_node("MatMul", &[a, b], Vec::new())
    }

    /// Adds `Shape`, the dims of `x` as a one-dimensional int64 value.
    pub fn shape(&mut self, x: &Value) -> Result<Value, ExportError> {
        self.add_node("Shape", &[x], Vec::new())
    }

    /// Adds `ConstantOfShape`: an f32 tensor of the dims in `shape` (a one-dimensional int64
    /// value) filled with `value`, which must be finite.
    pub fn constant_of_shape(&mut self, shape: &Value, value: f32) -> Result<Value, ExportError> {
        let fill = Constant::f32("ConstantOfShape value", &[1], vec![value])?;
        self.add_node(
            "ConstantOfShape",
            &[shape],
            vec![Attribute::tensor("value", fill)],
        )
    }

    /// Adds `Trilu`, which keeps the upper (`upper`) or lower triangle of the last two axes
    /// of `x` from diagonal `diagonal` on (0 the main diagonal, 1 the one above it) and
    /// zeroes the rest.
    pub fn trilu(&mut self, x: &Value, upper: bool, diagonal: i64) -> Result<Value, ExportError> {
        let k = self.add_constant("k", &Constant::i64("Trilu k", &[], vec![diagonal])?)?;
        let attributes = vec![Attribute::int("upper", i64::from(upper))];
        self.add_node("Trilu", &[x, &k], attributes)
    }

    fn reduce_with_axes_input(
        &mut self,
        op_type: &str,
        x: &Value,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Value, ExportError> {
        let axes = self.add_constant("axes", &Constant::i64_vector(axes))?;
        let attributes = vec![Attribute::int("keepdims", i64::from(keep_dims))];
        self.add_node(op_type, &[x, &axes], attributes)
    }
}

fn check_finite(parameter: &str, value: f32) -> Result<(), ExportError> {
    if !value.is_finite() {
        return Err(ExportError::InvalidParameter {
            parameter: parameter.to_owned(),
            value: value.to_string(),
            expected: "a finite value",
        });
    }
    Ok(())
}
