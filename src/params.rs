//! Parameter files in the ROS 2 layout, read without a ROS installation.
//!
//! A ROS 2 parameter file maps node names to `ros__parameters` sections:
//!
//! ```yaml
//! /**:
//!   ros__parameters:
//!     models_dir: models
//! clarify_policy:
//!   ros__parameters:
//!     control_rate_hz: 50.0
//! ```
//!
//! A node reads the section of its name (written `name`, `/name` or `/namespace/name`) on top
//! of the `/**` section that applies to every node. Nested maps merge key by key, as ROS 2
//! flattens them to dotted parameter names. The result is deserialised into the caller's
//! settings type, so unknown or mistyped parameters are errors that name the parameter.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use thiserror::Error;

/// Key of the parameters inside a node section.
pub const PARAMETERS_KEY: &str = "ros__parameters";

/// Node key whose parameters apply to every node.
pub const ALL_NODES_KEY: &str = "/**";

/// Failures of reading a parameter file.
#[derive(Debug, Error)]
pub enum ParamsError {
    #[error("cannot read parameter file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parameter file {path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("parameter file {path}: {detail}")]
    Layout { path: PathBuf, detail: String },
    #[error("parameter file {path}, node {node}: {message}")]
    Value {
        path: PathBuf,
        node: String,
        message: String,
    },
}

/// Reads the parameters of node `node` (namespace `namespace`, `/` for the root) from the
/// file at `path` into `T`. A file without a section for the node gives `T`'s defaults when
/// `T` has them for every field.
pub fn load_node_parameters<T: DeserializeOwned>(
    path: &Path,
    namespace: &str,
    node: &str,
) -> Result<T, ParamsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_node_parameters(&text, path, namespace, node)
}

/// Like [`load_node_parameters`] on text already read; `path` names the source in errors.
pub fn parse_node_parameters<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    namespace: &str,
    node: &str,
) -> Result<T, ParamsError> {
    let parameters = node_parameters(text, path, namespace, node)?;
    serde_path_to_error::deserialize(Value::Object(parameters)).map_err(|error| {
        let parameter = error.path().to_string();
        let message = if parameter == "." {
            error.inner().to_string()
        } else {
            format!("parameter {parameter}: {}", error.inner())
        };
        ParamsError::Value {
            path: path.to_path_buf(),
            node: node.to_owned(),
            message,
        }
    })
}

/// Returns the merged `ros__parameters` of a node as a JSON object.
pub fn node_parameters(
    text: &str,
    path: &Path,
    namespace: &str,
    node: &str,
) -> Result<Map<String, Value>, ParamsError> {
    let document: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_saphyr::from_str(text).map_err(|error| ParamsError::Yaml {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?
    };
    let layout = |detail: String| ParamsError::Layout {
        path: path.to_path_buf(),
        detail,
    };
    let Value::Object(sections) = document else {
        return Err(layout(
            "the top level must map node names to `ros__parameters` sections".to_owned(),
        ));
    };

    let namespace = namespace.trim_end_matches('/');
    let names = [
        ALL_NODES_KEY.to_owned(),
        node.to_owned(),
        format!("/{node}"),
        format!("{namespace}/{node}"),
    ];
    let mut merged = Map::new();
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let Some(section) = sections.get(&name) else {
            continue;
        };
        let parameters = match section {
            Value::Object(section) => section.get(PARAMETERS_KEY),
            _ => None,
        };
        match parameters {
            Some(Value::Object(parameters)) => merge(&mut merged, parameters),
            Some(Value::Null) => {}
            _ => {
                return Err(layout(format!(
                    "section {name} has no `{PARAMETERS_KEY}` map: write `{name}:` then \
                     `  {PARAMETERS_KEY}:` with the parameters below it"
                )));
            }
        }
    }
    Ok(merged)
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(update)) => merge(existing, update),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}
