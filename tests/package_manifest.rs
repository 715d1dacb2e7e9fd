//! Checks of the ROS 2 package files: every interface file parses, the launch file is valid
//! Python, the parameter file fills the policy runner's settings, and package.xml declares
//! exactly the message packages that the code speaks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clarify::msg::definition::{BaseType, Definition, parse_message, parse_service};
use clarify::msg::{self, PACKAGE};
use clarify::params::load_node_parameters;
use clarify::runner::RunnerConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_with_extension(folder: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .with_context(|| format!("cannot list {}", folder.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|e| e == extension));
    files.sort();
    Ok(files)
}

/// The `<depend>`-like entries of a package.xml with the given tag.
fn dependencies(package_xml: &str, tag: &str) -> BTreeSet<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    package_xml
        .lines()
        .filter_map(|line| {
            let start = line.find(&open)? + open.len();
            let end = line.find(&close)?;
            Some(line[start..end].trim().to_owned())
        })
        .collect()
}

fn referenced_packages(definition: &Definition, into: &mut BTreeSet<String>) {
    for field in &definition.fields {
        if let BaseType::Message { package, .. } = &field.field_type.base {
            into.insert(package.clone());
        }
    }
}

/// Parses every interface file and returns the packages their fields refer to.
fn interface_packages() -> Result<BTreeSet<String>> {
    let mut packages = BTreeSet::new();
    let messages = files_with_extension(&root().join("msg/msg"), "msg")?;
    let services = files_with_extension(&root().join("msg/srv"), "srv")?;
    assert!(
        messages.len() >= 5 && services.len() >= 4,
        "{messages:?} {services:?}"
    );
    for path in messages {
        let text = fs::read_to_string(&path)?;
        let definition = parse_message(PACKAGE, &text)
            .with_context(|| format!("{} does not parse", path.display()))?;
        referenced_packages(&definition, &mut packages);
    }
    for path in services {
        let text = fs::read_to_string(&path)?;
        let service = parse_service(PACKAGE, &text)
            .with_context(|| format!("{} does not parse", path.display()))?;
        referenced_packages(&service.request, &mut packages);
        referenced_packages(&service.response, &mut packages);
    }
    Ok(packages)
}

#[test]
fn interface_files_parse_and_msg_package_declares_their_dependencies() -> Result<()> {
    let mut referenced = interface_packages()?;
    referenced.remove(PACKAGE);

    let package_xml = fs::read_to_string(root().join("msg/package.xml"))?;
    let declared = dependencies(&package_xml, "depend");

    assert_eq!(
        declared, referenced,
        "msg/package.xml <depend> entries must be the packages that msg/ and srv/ refer to"
    );
    Ok(())
}

#[test]
fn package_xml_declares_the_message_packages_the_code_uses() -> Result<()> {
    let mut used = BTreeSet::from([PACKAGE.to_owned()]);
    for description in msg::standard_descriptions()
        .into_iter()
        .chain(msg::project_descriptions())
    {
        let package = description
            .type_name
            .split('/')
            .next()
            .context("type name without package")?;
        used.insert(package.to_owned());
        for field in &description.fields {
            // Field types are spelled `package/Type`, with `[]` for arrays.
            if let Some((package, _)) = field.ros_type.split_once('/') {
                used.insert(package.to_owned());
            }
        }
    }

    let package_xml = fs::read_to_string(root().join("package.xml"))?;
    let declared = dependencies(&package_xml, "depend");

    let missing: Vec<_> = used.difference(&declared).collect();
    let unused: Vec<_> = declared.difference(&used).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "package.xml: missing <depend> for {missing:?}; declared but unused: {unused:?}"
    );
    Ok(())
}

#[test]
fn launch_file_is_valid_python_naming_both_nodes() -> Result<()> {
    let launch = root().join("launch/clarify.launch.py");
    let output = Command::new("python3")
        .arg("-c")
        .arg("import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])")
        .arg(&launch)
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!(
            "{} is not valid Python: {}",
            launch.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = fs::read_to_string(&launch)?;
    for needle in [
        "generate_launch_description",
        "name=\"clarify_node\"",
        "name=\"clarify_policy\"",
        "\"clarify.yaml\"",
    ] {
        assert!(text.contains(needle), "launch file lacks {needle}");
    }
    Ok(())
}

#[test]
fn parameter_file_fills_the_policy_runner_settings() -> Result<()> {
    let path = root().join("launch/clarify.yaml");
    let config: RunnerConfig = load_node_parameters(&path, "/", "clarify_policy")?;

    config.validate()?;
    assert_eq!(config.models_dir, PathBuf::from("models"));
    assert_eq!(config.control_rate_hz, 50.0);
    assert_eq!(config.observation_qos.depth, 1);
    Ok(())
}

#[test]
fn parameter_file_fills_the_query_node_settings() -> Result<()> {
    let path = root().join("launch/clarify.yaml");
    let settings: clarify::node::NodeSettings = load_node_parameters(&path, "/", "clarify_node")?;

    settings.validate()?;
    assert_eq!(settings.store_path, PathBuf::from("clarify.sqlite"));
    assert_eq!(settings.queries_per_round, 10);
    assert_eq!(settings.topics.queries, "clarify/preference_query");
    Ok(())
}
