//! The ONNX exporter: graph builder checks, the encoded messages and the ONNX checker's verdict
//! on exported models.

mod onnx_common;

use std::fs;

use anyhow::Result;
use clarify::onnx::proto::{ModelProto, tensor_shape_proto::dimension, type_proto};
use clarify::onnx::{
    Attribute, Constant, DEFAULT_OPSET, Dim, ElementType, ExportError, GraphBuilder,
    MlpExportOptions, ModelInfo, encode_model, write_model,
};
use onnx_common::{assert_passes_onnx_checker, random_mlp, temp_dir};
use prost::Message;

fn single_input_graph() -> Result<(GraphBuilder, clarify::onnx::Value)> {
    let mut graph = GraphBuilder::new("test", DEFAULT_OPSET)?;
    let x = graph.add_input("x", ElementType::F32, &[Dim::batch(), Dim::Fixed(3)])?;
    Ok((graph, x))
}

#[test]
fn mlp_export_passes_onnx_checker() -> Result<()> {
    let dir = temp_dir("mlp-checker");
    let mlp = random_mlp(&[39, 64, 64, 4], 1);
    let model = mlp.to_model(&MlpExportOptions::default())?;
    let path = dir.join("mlp.onnx");

    write_model(&model, &path)?;

    assert_passes_onnx_checker(&path);
    Ok(())
}

#[test]
fn mlp_export_encodes_names_dims_and_metadata() -> Result<()> {
    let mlp = random_mlp(&[5, 7, 2], 2);
    let options = MlpExportOptions {
        input_name: "observation".to_owned(),
        output_name: "action".to_owned(),
        info: ModelInfo {
            model_version: Some(3),
            metadata: vec![("dataset".to_owned(), "dial-turn".to_owned())],
            ..ModelInfo::default()
        },
        ..MlpExportOptions::default()
    };

    let bytes = encode_model(&mlp.to_model(&options)?);
    let decoded = ModelProto::decode(bytes.as_slice())?;

    assert_eq!(decoded.ir_version, Some(8));
    assert_eq!(decoded.opset_import.len(), 1);
    assert_eq!(decoded.opset_import[0].version, Some(17));
    assert_eq!(decoded.producer_name.as_deref(), Some("clarify"));
    assert_eq!(
        decoded.producer_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(decoded.model_version, Some(3));
    assert_eq!(decoded.metadata_props.len(), 1);
    assert_eq!(decoded.metadata_props[0].key.as_deref(), Some("dataset"));
    assert_eq!(
        decoded.metadata_props[0].value.as_deref(),
        Some("dial-turn")
    );
    let graph = decoded.graph.expect("graph");
    assert_eq!(graph.input[0].name.as_deref(), Some("observation"));
    assert_eq!(graph.output[0].name.as_deref(), Some("action"));
    let Some(type_proto::Value::TensorType(tensor)) =
        &graph.input[0].r#type.as_ref().unwrap().value
    else {
        panic!("input is not a tensor");
    };
    let dims: Vec<_> = tensor
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| d.value.clone())
        .collect();
    assert_eq!(
        dims,
        [
            Some(dimension::Value::DimParam("batch".to_owned())),
            Some(dimension::Value::DimValue(5))
        ]
    );
    let names: Vec<_> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    assert!(names.contains(&"layers.0.weight"), "{names:?}");
    assert!(names.contains(&"layers.1.bias"), "{names:?}");
    Ok(())
}

#[test]
fn initializer_bytes_are_little_endian_row_major() -> Result<()> {
    let (mut graph, x) = single_input_graph()?;
    let values = vec![1.0, -2.5, 3.25, 0.0, 5.0, -6.0];
    let weight = Constant::f32("w", &[3, 2], values.clone())?;
    let bias = Constant::f32("b", &[2], vec![0.5, -0.5])?;
    let y = graph.gemm(&x, "dense", &weight, &bias)?;
    graph.add_output(&y, "y", ElementType::F32, &[Dim::batch(), Dim::Fixed(2)])?;

    let model = graph.build(&ModelInfo::default())?;

    let graph = model.graph.expect("graph");
    let weight = graph
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some("dense.weight"))
        .expect("weight initializer");
    assert_eq!(weight.dims, [3, 2]);
    assert_eq!(weight.data_type, Some(1));
    let expected: Vec<u8> = values.iter().flat_map(|v: &f32| v.to_le_bytes()).collect();
    assert_eq!(weight.raw_data.as_deref(), Some(expected.as_slice()));
    Ok(())
}

#[test]
fn zero_valued_attributes_are_encoded() -> Result<()> {
    let (mut graph, x) = single_input_graph()?;
    let y = graph.leaky_relu(&x, 0.0)?;
    let z = graph.softmax(&y, 0)?;
    graph.add_output(&z, "z", ElementType::F32, &[Dim::batch(), Dim::Fixed(3)])?;

    let bytes = encode_model(&graph.build(&ModelInfo::default())?);
    let decoded = ModelProto::decode(bytes.as_slice())?;

    let nodes = decoded.graph.expect("graph").node;
    assert_eq!(nodes[0].attribute[0].f, Some(0.0));
    assert_eq!(nodes[1].attribute[0].i, Some(0));
    Ok(())
}

#[test]
fn undefined_node_input_rejected() -> Result<()> {
    let (mut graph, _) = single_input_graph()?;
    let mut unrelated = GraphBuilder::new("other", DEFAULT_OPSET)?;
    let stranger = unrelated.add_input("stranger", ElementType::F32, &[Dim::Fixed(1)])?;

    let error = graph.relu(&stranger).unwrap_err();

    assert!(
        matches!(error, ExportError::UndefinedValue { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("`stranger`"), "{error}");
    Ok(())
}

#[test]
fn duplicate_value_name_rejected() -> Result<()> {
    let (mut graph, _) = single_input_graph()?;
    let constant = Constant::f32("c", &[1], vec![1.0])?;

    let error = graph.add_initializer("x", &constant).unwrap_err();

    assert!(
        matches!(&error, ExportError::DuplicateName { name } if name == "x"),
        "{error}"
    );
    Ok(())
}

#[test]
fn generated_names_avoid_user_names() -> Result<()> {
    let mut graph = GraphBuilder::new("test", DEFAULT_OPSET)?;
    let x = graph.add_input("Relu_0", ElementType::F32, &[Dim::Fixed(2)])?;

    let y = graph.relu(&x)?;

    assert_ne!(y.name(), "Relu_0");
    Ok(())
}

#[test]
fn duplicate_attribute_rejected() -> Result<()> {
    let (mut graph, x) = single_input_graph()?;
    let attributes = vec![Attribute::int("axis", 1), Attribute::int("axis", 0)];

    let error = graph.add_node("Softmax", &[&x], attributes).unwrap_err();

    assert!(
        matches!(error, ExportError::DuplicateName { .. }),
        "{error}"
    );
    Ok(())
}

#[test]
fn constant_element_count_checked() {
    let error = Constant::f32("w", &[2, 3], vec![0.0; 5]).unwrap_err();

    assert!(
        matches!(&error, ExportError::ElementCount { name, found: 5, .. } if name == "w"),
        "{error}"
    );
}

#[test]
fn non_finite_weight_rejected() {
    let error = Constant::f32("w", &[3], vec![0.0, f32::NAN, 1.0]).unwrap_err();

    assert!(
        matches!(&error, ExportError::NonFiniteValue { name, index: 1, .. } if name == "w"),
        "{error}"
    );
}

#[test]
fn unsupported_opset_rejected() {
    for opset in [16, 22] {
        let error = GraphBuilder::new("test", opset).unwrap_err();

        assert!(
            matches!(error, ExportError::UnsupportedOpset { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&opset.to_string()), "{error}");
    }
}

#[test]
fn graph_without_outputs_rejected() -> Result<()> {
    let (graph, _) = single_input_graph()?;

    let error = graph.build(&ModelInfo::default()).unwrap_err();

    assert!(matches!(error, ExportError::NoOutputs { .. }), "{error}");
    Ok(())
}

#[test]
fn duplicate_metadata_key_rejected() -> Result<()> {
    let (mut graph, x) = single_input_graph()?;
    graph.add_output(&x, "x", ElementType::F32, &[Dim::batch(), Dim::Fixed(3)])?;
    let info = ModelInfo {
        metadata: vec![
            ("key".to_owned(), "a".to_owned()),
            ("key".to_owned(), "b".to_owned()),
        ],
        ..ModelInfo::default()
    };

    let error = graph.build(&info).unwrap_err();

    assert!(
        matches!(&error, ExportError::DuplicateMetadataKey { key } if key == "key"),
        "{error}"
    );
    Ok(())
}

#[test]
fn mlp_with_wrong_weight_length_rejected() {
    let mut mlp = random_mlp(&[4, 3, 2], 3);
    mlp.layers[1].weight.pop();

    let error = mlp.to_model(&MlpExportOptions::default()).unwrap_err();

    assert!(
        matches!(&error, ExportError::ElementCount { name, found: 5, .. }
            if name == "layers.1.weight"),
        "{error}"
    );
}

#[test]
fn mlp_with_zero_std_rejected() {
    let mut mlp = random_mlp(&[4, 3, 2], 4);
    mlp.input_standardization.as_mut().unwrap().std[2] = 0.0;

    let error = mlp.to_model(&MlpExportOptions::default()).unwrap_err();

    assert!(error.to_string().contains("std[2]"), "{error}");
}

#[test]
fn mlp_with_mismatched_sizes_rejected() {
    let mut mlp = random_mlp(&[4, 3, 2], 5);
    mlp.sizes.push(1);

    let error = mlp.to_model(&MlpExportOptions::default()).unwrap_err();

    assert!(
        matches!(error, ExportError::InvalidParameter { .. }),
        "{error}"
    );
}

#[test]
fn write_model_replaces_file_and_leaves_no_temporary() -> Result<()> {
    let dir = temp_dir("write-atomic");
    let path = dir.join("model.onnx");
    fs::write(&path, b"old contents")?;
    let model = random_mlp(&[3, 2], 6).to_model(&MlpExportOptions::default())?;

    write_model(&model, &path)?;

    assert_eq!(fs::read(&path)?, encode_model(&model));
    let names: Vec<_> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["model.onnx"]);
    Ok(())
}

#[test]
fn write_model_to_missing_directory_fails() -> Result<()> {
    let dir = temp_dir("write-missing-dir");
    let path = dir.join("no-such-dir").join("model.onnx");
    let model = random_mlp(&[3, 2], 7).to_model(&MlpExportOptions::default())?;

    let error = write_model(&model, &path).unwrap_err();

    assert!(matches!(error, ExportError::Write { .. }), "{error}");
    assert!(error.to_string().contains("no-such-dir"), "{error}");
    Ok(())
}
