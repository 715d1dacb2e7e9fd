//! `clarify node`: the live query node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clarify::node::{self, NodeSettings};
use clarify::params::load_node_parameters;
use clarify::transport::NodeConfig;
use clarify::transport::dds::DdsNode;

use super::policy::{domain_id_from_env, parse_ros_args};
use super::stop::stop_flag;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Parameter file in the ROS 2 layout (for example launch/clarify.yaml).
    #[arg(long)]
    params: Option<PathBuf>,

    /// Node name: the section of the parameter file to read.
    #[arg(long, default_value = "clarify_node")]
    node_name: String,

    /// Node namespace.
    #[arg(long, default_value = "/")]
    namespace: String,

    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<f64>,

    /// ROS 2 arguments as `ros2 launch` and `ros2 run` pass them; `-r __node:=NAME`,
    /// `-r __ns:=NS` and `--params-file FILE` are read, and override the options above.
    #[arg(long = "ros-args", num_args = 0.., allow_hyphen_values = true, value_name = "ARG")]
    ros_args: Option<Vec<String>>,
}

pub fn run(args: &NodeArgs) -> anyhow::Result<()> {
    let ros = parse_ros_args(args.ros_args.as_deref().unwrap_or_default())?;
    let node_name = ros.node_name.unwrap_or_else(|| args.node_name.clone());
    let namespace = match ros.namespace {
        Some(namespace) if namespace.is_empty() => "/".to_owned(),
        Some(namespace) => namespace,
        None => args.namespace.clone(),
    };
    let settings: NodeSettings = match ros.params_file.as_ref().or(args.params.as_ref()) {
        Some(path) => load_node_parameters(path, &namespace, &node_name)?,
        None => NodeSettings::default(),
    };
    settings.validate()?;
    let stop = stop_flag(args.duration)?;

    let mut transport = DdsNode::new(NodeConfig {
        name: node_name,
        namespace,
        domain_id: domain_id_from_env()?,
    })?;
    let name = transport.fully_qualified_name();
    let summary = node::run(&mut transport, &settings, &name, &stop)
        .context("the clarify node stopped with an error")?;
    let document = serde_json::json!({
        "answers_accepted": summary.answers.accepted,
        "answers_rejected": summary.answers.rejected(),
        "queries_selected": summary.queries_selected,
        "queries_expired": summary.queries_expired,
        "recording_dataset": summary.recording.get(),
        "steps_recorded": summary.recorder.steps_written,
    });
    println!("{document}");
    Ok(())
}
