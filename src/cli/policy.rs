//! `clarify policy`: run the policy on the robot, and manage the model registry.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use clarify::infer::Runtime;
use clarify::params::load_node_parameters;
use clarify::registry::Registry;
use clarify::runner::{self, RunnerConfig};
use clarify::transport::NodeConfig;
use clarify::transport::dds::DdsNode;

use super::stop::stop_flag;

/// Default number of model versions a registry keeps.
const DEFAULT_KEEP: usize = 5;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the policy runner node on DDS until interrupted.
    ///
    /// Reads the node's `ros__parameters` from the parameter file (ROS 2 layout), loads and
    /// validates the model set, and publishes actions at the control rate while enabled
    /// through the SetPolicyEnabled service (and the deadman button, when configured). The
    /// DDS domain is ROS_DOMAIN_ID (default 0).
    Run(RunArgs),

    /// Install a model set folder (manifest.json and the ONNX files it lists) as a version.
    Install(InstallArgs),

    /// Make an installed version the active one.
    Activate(ActivateArgs),

    /// Switch back to the previously active version, or to the version given.
    Rollback(RollbackArgs),

    /// List installed versions and the active one as JSON.
    List(RegistryArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Parameter file in the ROS 2 layout (for example launch/clarify.yaml).
    #[arg(long)]
    params: Option<PathBuf>,

    /// Node name: the section of the parameter file to read.
    #[arg(long, default_value = "clarify_policy")]
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

/// The settings that ROS 2 arguments can carry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RosArgs {
    pub(super) node_name: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) params_file: Option<PathBuf>,
}

/// Reads `-r __node:=NAME`, `-r __ns:=NS` and `--params-file FILE`; other ROS 2 arguments
/// (remappings of topics, `-p` parameters, log levels) are ignored with a warning.
pub(super) fn parse_ros_args(args: &[String]) -> anyhow::Result<RosArgs> {
    let mut parsed = RosArgs::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--" | "--ros-args" => {}
            "-r" | "--remap" | "--params-file" | "-p" | "--param" | "--log-level" => {
                let value = iter
                    .next()
                    .with_context(|| format!("ROS argument {arg} needs a value"))?;
                match (arg.as_str(), value.split_once(":=")) {
                    ("--params-file", _) => parsed.params_file = Some(PathBuf::from(value)),
                    ("-r" | "--remap", Some(("__node" | "__name", name))) => {
                        parsed.node_name = Some(name.to_owned());
                    }
                    ("-r" | "--remap", Some(("__ns", namespace))) => {
                        parsed.namespace = Some(namespace.to_owned());
                    }
                    _ => tracing::warn!(argument = %arg, %value, "ignoring ROS argument"),
                }
            }
            other => tracing::warn!(argument = %other, "ignoring ROS argument"),
        }
    }
    Ok(parsed)
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry folder.
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Version name; must equal the manifest's `version`.
    #[arg(long)]
    version: String,

    /// Folder holding manifest.json and the ONNX files.
    source: PathBuf,

    /// Activate the version after installing it.
    #[arg(long)]
    activate: bool,

    /// Versions to keep; older ones are removed, except the active and previous ones.
    #[arg(long, default_value_t = DEFAULT_KEEP, value_parser = super::parse_positive)]
    keep: usize,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Installed version to activate.
    version: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Version to switch to (default: the previously active one).
    version: Option<String>,
}

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Run(args) => run_node(&args),
        PolicyCommand::Install(args) => {
            let registry = Registry::open(&args.registry.models_dir, args.keep)?;
            let set = registry.install_from_dir(&args.version, &args.source)?;
            if args.activate {
                registry.activate(&set.version)?;
            }
            print_registry(&registry)
        }
        PolicyCommand::Activate(args) => {
            let registry = Registry::open(&args.registry.models_dir, DEFAULT_KEEP)?;
            registry.activate(&args.version)?;
            print_registry(&registry)
        }
        PolicyCommand::Rollback(args) => {
            let registry = Registry::open(&args.registry.models_dir, DEFAULT_KEEP)?;
            registry.rollback(args.version.as_deref())?;
            print_registry(&registry)
        }
        PolicyCommand::List(args) => {
            print_registry(&Registry::open(&args.models_dir, DEFAULT_KEEP)?)
        }
    }
}

fn print_registry(registry: &Registry) -> anyhow::Result<()> {
    let pointer = registry.current()?;
    let document = serde_json::json!({
        "models_dir": registry.root(),
        "versions": registry.versions()?,
        "current": pointer.as_ref().map(|p| &p.version),
        "previous": pointer.as_ref().and_then(|p| p.previous.as_ref()),
    });
    println!("{document}");
    Ok(())
}

/// Reads the DDS domain id from ROS_DOMAIN_ID; 0 when it is unset or empty.
pub(super) fn domain_id_from_env() -> anyhow::Result<u16> {
    match std::env::var("ROS_DOMAIN_ID") {
        Ok(text) if !text.is_empty() => text
            .parse()
            .with_context(|| format!("ROS_DOMAIN_ID is {text:?}, expected an integer 0 to 232")),
        _ => Ok(0),
    }
}

fn run_node(args: &RunArgs) -> anyhow::Result<()> {
    let ros = parse_ros_args(args.ros_args.as_deref().unwrap_or_default())?;
    let node_name = ros.node_name.unwrap_or_else(|| args.node_name.clone());
    let namespace = match ros.namespace {
        Some(namespace) if namespace.is_empty() => "/".to_owned(),
        Some(namespace) => namespace,
        None => args.namespace.clone(),
    };
    let mut config: RunnerConfig = match ros.params_file.as_ref().or(args.params.as_ref()) {
        Some(path) => load_node_parameters(path, &namespace, &node_name)?,
        None => RunnerConfig::default(),
    };
    config.node_name.clone_from(&node_name);
    config.validate()?;
    let domain_id = domain_id_from_env()?;
    let runtime = Runtime::new(config.infer.clone())?;
    let mut node = DdsNode::new(NodeConfig {
        name: node_name,
        namespace,
        domain_id,
    })?;

    let stop = stop_flag(args.duration)?;
    let stats = runner::run(&mut node, &config, runtime, &stop)?;
    let summary = serde_json::json!({
        "steps": stats.steps,
        "actions": stats.actions,
        "safe_actions": stats.safe_actions,
        "idle_steps": stats.idle_steps,
        "overruns": stats.overruns,
        "swaps": stats.swaps,
        "rejected_updates": stats.rejected_updates,
    });
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ros_arguments_from_launch_are_read() -> anyhow::Result<()> {
        let args: Vec<String> = [
            "-r",
            "__node:=policy2",
            "-r",
            "__ns:=/robot1",
            "--params-file",
            "/tmp/p.yaml",
            "-r",
            "action:=cmd",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let parsed = parse_ros_args(&args)?;
        assert_eq!(
            parsed,
            RosArgs {
                node_name: Some("policy2".into()),
                namespace: Some("/robot1".into()),
                params_file: Some(PathBuf::from("/tmp/p.yaml")),
            }
        );
        assert!(parse_ros_args(&["--params-file".to_owned()]).is_err());
        Ok(())
    }
}
