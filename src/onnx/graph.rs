//! The graph builder: named inputs, outputs, initializers and nodes, assembled into a
//! [`ModelProto`].
//!
//! The builder checks what it can without operator schemas. Every name is non-empty and unique,
//! and a node only reads values that exist when it is added, so nodes come out in topological
//! order. Initializer data must match its dims and be finite, and metadata keys must be unique.
//! Operator semantics (input counts, shape compatibility) are left to the ONNX checker and ONNX
//! Runtime.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;

use super::error::ExportError;
use super::proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto, type_proto,
};

/// Opset of the default ONNX domain that exports use unless they need a newer operator.
/// Opset 17 is the first with `LayerNormalization`.
pub const DEFAULT_OPSET: i64 = 17;

/// Opsets that the builder can write, with the IR version each needs in [`ir_version_for_opset`].
pub const SUPPORTED_OPSETS: RangeInclusive<i64> = 17..=21;

/// Name of the symbolic batch dimension of exported inputs and outputs.
pub const BATCH_DIM: &str = "batch";

/// Returns the lowest IR version that a model importing `opset` of the default domain must
/// declare, from the release table of the ONNX project (ONNX 1.12 to 1.16), or `None` for an
/// opset outside [`SUPPORTED_OPSETS`].
pub fn ir_version_for_opset(opset: i64) -> Option<i64> {
    match opset {
        17 | 18 => Some(8),
        19 | 20 => Some(9),
        21 => Some(10),
        _ => None,
    }
}

/// One axis of a graph input or output: a fixed size or a named symbolic size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbolic(String),
}

impl Dim {
    /// Creates the symbolic batch axis, named [`BATCH_DIM`].
    pub fn batch() -> Self {
        Dim::Symbolic(BATCH_DIM.to_owned())
    }
}

/// Element type of a graph input, output or initializer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    F32,
    I64,
}

impl ElementType {
    fn data_type(self) -> DataType {
        match self {
            ElementType::F32 => DataType::Float,
            ElementType::I64 => DataType::Int64,
        }
    }
}

/// A value of the graph under construction (a graph input, an initializer or a node output),
/// identified by its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    /// Returns the value's name in the graph.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Element data of a [`Constant`].
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A dense tensor with row-major data, for initializers and tensor attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    dims: Vec<usize>,
    data: TensorData,
}

impl Constant {
    /// Creates an f32 tensor. `data` is row-major and must contain the product of `dims`
    /// elements, all finite. `name` identifies the tensor in errors.
    pub fn f32(name: &str, dims: &[usize], data: Vec<f32>) -> Result<Self, ExportError> {
        check_element_count(name, dims, data.len())?;
        if let Some(index) = data.iter().position(|value| !value.is_finite()) {
            return Err(ExportError::NonFiniteValue {
                name: name.to_owned(),
                index,
                value: data[index],
            });
        }
        Ok(Self {
            dims: dims.to_vec(),
            data: TensorData::F32(data),
        })
    }

    /// Creates an i64 tensor. `data` is row-major and must contain the product of `dims`
    /// elements. `name` identifies the tensor in errors.
    pub fn i64(name: &str, dims: &[usize], data: Vec<i64>) -> Result<Self, ExportError> {
        check_element_count(name, dims, data.len())?;
        Ok(Self {
            dims: dims.to_vec(),
            data: TensorData::I64(data),
        })
    }

    /// Creates a one-dimensional i64 tensor, the form of shape, axes and index operands.
    pub fn i64_vector(data: &[i64]) -> Self {
        Self {
            dims: vec![data.len()],
            data: TensorData::I64(data.to_vec()),
        }
    }

    /// Returns the tensor's dims.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Returns the tensor's element data.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    fn to_proto(&self, name: Option<&str>) -> TensorProto {
        let (data_type, raw_data) = match &self.data {
            TensorData::F32(values) => (
                DataType::Float,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            TensorData::I64(values) => (
                DataType::Int64,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        };
        TensorProto {
            dims: self.dims.iter().map(|&d| dim_to_i64(d)).collect(),
            data_type: Some(data_type as i32),
            name: name.map(str::to_owned),
            doc_string: None,
            raw_data: Some(raw_data),
        }
    }
}

fn check_element_count(name: &str, dims: &[usize], found: usize) -> Result<(), ExportError> {
    let expected = dims
        .iter()
        .try_fold(1_usize, |product, &dim| product.checked_mul(dim));
    if expected != Some(found) {
        return Err(ExportError::ElementCount {
            name: name.to_owned(),
            dims: dims.to_vec(),
            found,
        });
    }
    Ok(())
}

/// ONNX stores dims as int64. Sizes that fit in memory are far below `i64::MAX`, so the
/// saturation never applies to a tensor that exists.
fn dim_to_i64(dim: usize) -> i64 {
    i64::try_from(dim).unwrap_or(i64::MAX)
}

/// A node attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    Float(f32),
    Int(i64),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Tensor(Constant),
}

/// A named node attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttributeValue,
}

impl Attribute {
    /// Creates a float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        Self::new(name, AttributeValue::Float(value))
    }

    /// Creates an integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        Self::new(name, AttributeValue::Int(value))
    }

    /// Creates a float list attribute.
    pub fn floats(name: &str, values: &[f32]) -> Self {
        Self::new(name, AttributeValue::Floats(values.to_vec()))
    }

    /// Creates an integer list attribute.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        Self::new(name, AttributeValue::Ints(values.to_vec()))
    }

    /// Creates a tensor attribute.
    pub fn tensor(name: &str, value: Constant) -> Self {
        Self::new(name, AttributeValue::Tensor(value))
    }

    fn new(name: &str, value: AttributeValue) -> Self {
        Self {
            name: name.to_owned(),
            value,
        }
    }

    fn to_proto(&self) -> AttributeProto {
        let mut proto = AttributeProto {
            name: Some(self.name.clone()),
            ..AttributeProto::default()
        };
        let attribute_type = match &self.value {
            AttributeValue::Float(value) => {
                proto.f = Some(*value);
                AttributeType::Float
            }
            AttributeValue::Int(value) => {
                proto.i = Some(*value);
                AttributeType::Int
            }
            AttributeValue::Floats(values) => {
                proto.floats.clone_from(values);
                AttributeType::Floats
            }
            AttributeValue::Ints(values) => {
                proto.ints.clone_from(values);
                AttributeType::Ints
            }
            AttributeValue::Tensor(constant) => {
                proto.t = Some(constant.to_proto(None));
                AttributeType::Tensor
            }
        };
        proto.r#type = Some(attribute_type as i32);
        proto
    }
}

/// Descriptive fields of an exported model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Name of the program that wrote the model (`producer_name`).
    pub producer_name: String,
    /// Version of that program (`producer_version`).
    pub producer_version: String,
    /// Version of the model itself (`model_version`), if the caller tracks one.
    pub model_version: Option<i64>,
    /// Free-text description of the model (`doc_string`).
    pub doc_string: Option<String>,
    /// String key/value metadata (`metadata_props`) with unique keys.
    pub metadata: Vec<(String, String)>,
}

impl Default for ModelInfo {
    /// Producer "clarify" at this crate's version, no model version, doc string or metadata.
    fn default() -> Self {
        Self {
            producer_name: "clarify".to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            model_version: None,
            doc_string: None,
            metadata: Vec::new(),
        }
    }
}

/// Builds one ONNX graph. See the module documentation for what it checks.
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    name: String,
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    /// Every value name in use (inputs, initializers, node outputs).
    values: HashSet<String>,
    node_names: HashSet<String>,
    /// Per-prefix counters for generated names.
    name_counters: HashMap<String, usize>,
}

impl GraphBuilder {
    /// Starts an empty graph named `name` that imports `opset` of the default ONNX domain.
    pub fn new(name: &str, opset: i64) -> Result<Self, ExportError> {
        check_name("graph", name)?;
        if !SUPPORTED_OPSETS.contains(&opset) {
            return Err(ExportError::UnsupportedOpset {
                opset,
                supported: SUPPORTED_OPSETS,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            opset,
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            values: HashSet::new(),
            node_names: HashSet::new(),
            name_counters: HashMap::new(),
        })
    }

    /// Returns the opset of the default domain that the graph imports.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Adds a graph input.
    pub fn add_input(
        &mut self,
        name: &str,
        element_type: ElementType,
        dims: &[Dim],
    ) -> Result<Value, ExportError> {
        let info = value_info(name, element_type, dims)?;
        let value = self.define_value(name)?;
        self.inputs.push(info);
        Ok(value)
    }

    /// Adds an initializer (a constant tensor stored in the model) under `name`.
    pub fn add_initializer(
        &mut self,
        name: &str,
        constant: &Constant,
    ) -> Result<Value, ExportError> {
        let value = self.define_value(name)?;
        self.initializers.push(constant.to_proto(Some(name)));
        Ok(value)
    }

    /// Adds an initializer under a generated name that starts with `prefix`.
    pub fn add_constant(
        &mut self,
        prefix: &str,
        constant: &Constant,
    ) -> Result<Value, ExportError> {
        let name = self.generate_value_name(prefix);
        self.add_initializer(&name, constant)
    }

    /// Adds a node of the default domain with one output and returns that output.
    pub fn add_node(
        &mut self,
        op_type: &str,
        inputs: &[&Value],
        attributes: Vec<Attribute>,
    ) -> Result<Value, ExportError> {
        let mut outputs = self.add_node_with_outputs(op_type, inputs, attributes, 1)?;
        Ok(outputs.remove(0))
    }

    /// Adds a node of the default domain with `output_count` outputs and returns them in order.
    pub fn add_node_with_outputs(
        &mut self,
        op_type: &str,
        inputs: &[&Value],
        attributes: Vec<Attribute>,
        output_count: usize,
    ) -> Result<Vec<Value>, ExportError> {
        check_name("operator type", op_type)?;
        let node_name = self.generate_node_name(op_type);
        for input in inputs {
            if !self.values.contains(input.name()) {
                return Err(ExportError::UndefinedValue {
                    node: node_name,
                    value: input.name().to_owned(),
                });
            }
        }
        let mut attribute_names = HashSet::new();
        for attribute in &attributes {
            check_name("attribute", &attribute.name)?;
            if !attribute_names.insert(attribute.name.as_str()) {
                return Err(ExportError::DuplicateName {
                    name: format!("{node_name}.{}", attribute.name),
                });
            }
        }

        let outputs: Vec<Value> = if output_count == 1 {
            vec![self.define_value(&node_name)?]
        } else {
            (0..output_count)
                .map(|index| self.define_value(&format!("{node_name}_output{index}")))
                .collect::<Result<_, _>>()?
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|v| v.name().to_owned()).collect(),
            output: outputs.iter().map(|v| v.name().to_owned()).collect(),
            name: Some(node_name),
            op_type: Some(op_type.to_owned()),
            domain: Some(String::new()),
            attribute: attributes.iter().map(Attribute::to_proto).collect(),
            doc_string: None,
        });
        Ok(outputs)
    }

    /// Declares `value` a graph output named `name`. When the names differ, an `Identity` node
    /// gives the value its output name.
    pub fn add_output(
        &mut self,
        value: &Value,
        name: &str,
        element_type: ElementType,
        dims: &[Dim],
    ) -> Result<(), ExportError> {
        let info = value_info(name, element_type, dims)?;
        if !self.values.contains(value.name()) {
            return Err(ExportError::UndefinedValue {
                node: format!("graph output {name}"),
                value: value.name().to_owned(),
            });
        }
        if self
            .outputs
            .iter()
            .any(|output| output.name.as_deref() == Some(name))
        {
            return Err(ExportError::DuplicateName {
                name: name.to_owned(),
            });
        }
        if value.name() != name {
            let node_name = self.generate_node_name("Identity");
            self.define_value(name)?;
            self.nodes.push(NodeProto {
                input: vec![value.name().to_owned()],
                output: vec![name.to_owned()],
                name: Some(node_name),
                op_type: Some("Identity".to_owned()),
                domain: Some(String::new()),
                attribute: Vec::new(),
                doc_string: None,
            });
        }
        self.outputs.push(info);
        Ok(())
    }

    /// Assembles the model: IR version for the opset, the opset import, `info` and the graph.
    pub fn build(self, info: &ModelInfo) -> Result<ModelProto, ExportError> {
        if self.outputs.is_empty() {
            return Err(ExportError::NoOutputs { graph: self.name });
        }
        let mut keys = HashSet::new();
        for (key, _) in &info.metadata {
            if !keys.insert(key.as_str()) {
                return Err(ExportError::DuplicateMetadataKey { key: key.clone() });
            }
        }
        let ir_version = ir_version_for_opset(self.opset).ok_or(ExportError::UnsupportedOpset {
            opset: self.opset,
            supported: SUPPORTED_OPSETS,
        })?;

        let graph = GraphProto {
            node: self.nodes,
            name: Some(self.name),
            initializer: self.initializers,
            doc_string: None,
            input: self.inputs,
            output: self.outputs,
            value_info: Vec::new(),
        };
        Ok(ModelProto {
            ir_version: Some(ir_version),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            producer_name: Some(info.producer_name.clone()),
            producer_version: Some(info.producer_version.clone()),
            domain: None,
            model_version: info.model_version,
            doc_string: info.doc_string.clone(),
            graph: Some(graph),
            metadata_props: info
                .metadata
                .iter()
                .map(|(key, value)| StringStringEntryProto {
                    key: Some(key.clone()),
                    value: Some(value.clone()),
                })
                .collect(),
        })
    }

    fn define_value(&mut self, name: &str) -> Result<Value, ExportError> {
        check_name("value", name)?;
        if !self.values.insert(name.to_owned()) {
            return Err(ExportError::DuplicateName {
                name: name.to_owned(),
            });
        }
        Ok(Value(name.to_owned()))
    }

    fn generate_value_name(&mut self, prefix: &str) -> String {
        loop {
            let candidate = self.next_numbered_name(prefix);
            if !self.values.contains(&candidate) {
                return candidate;
            }
        }
    }

    /// Generates a node name that is unused both as a node name and as a value name, because
    /// a single-output node's output takes the node's name.
    fn generate_node_name(&mut self, op_type: &str) -> String {
        loop {
            let candidate = self.next_numbered_name(op_type);
            if !self.values.contains(&candidate) && !self.node_names.contains(&candidate) {
                self.node_names.insert(candidate.clone());
                return candidate;
            }
        }
    }

    fn next_numbered_name(&mut self, prefix: &str) -> String {
        let counter = self.name_counters.entry(prefix.to_owned()).or_default();
        let name = format!("{prefix}_{counter}");
        *counter += 1;
        name
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), ExportError> {
    if name.is_empty() {
        return Err(ExportError::EmptyName { kind });
    }
    Ok(())
}

fn value_info(
    name: &str,
    element_type: ElementType,
    dims: &[Dim],
) -> Result<ValueInfoProto, ExportError> {
    check_name("value", name)?;
    let mut shape = TensorShapeProto { dim: Vec::new() };
    for dim in dims {
        let value = match dim {
            Dim::Fixed(size) => tensor_shape_proto::dimension::Value::DimValue(dim_to_i64(*size)),
            Dim::Symbolic(symbol) => {
                check_name("symbolic dimension", symbol)?;
                tensor_shape_proto::dimension::Value::DimParam(symbol.clone())
            }
        };
        shape.dim.push(tensor_shape_proto::Dimension {
            value: Some(value),
            denotation: None,
        });
    }
    let tensor_type = type_proto::Tensor {
        elem_type: Some(element_type.data_type() as i32),
        shape: Some(shape),
    };
    Ok(ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor_type)),
            denotation: None,
        }),
        doc_string: None,
    })
}
