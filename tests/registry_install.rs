//! The model registry: manifest checks, installation through a staging folder, keeping the
//! newest versions, the current pointer and rollback.

#[path = "registry_fixture.rs"]
mod registry_fixture;

use std::fs;

use anyhow::Result;
use clarify::registry::{
    Expectation, MANIFEST_FILE, Manifest, Registry, RegistryError, sha256_bytes,
};
use registry_fixture::{DATASET_SHA256, LinearPolicy, POLICY_FILE, temp_dir};

fn install(registry: &Registry, version: &str) -> Result<()> {
    let source = temp_dir("set-source");
    LinearPolicy::default().write_set(&source, version)?;
    registry.install_from_dir(version, &source)?;
    Ok(())
}

fn visible_entries(root: &std::path::Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(root)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn manifest_round_trips_and_keeps_version_1_fields() -> Result<()> {
    let policy = LinearPolicy::default();
    let manifest = policy.manifest("v1", &policy.onnx_bytes());
    let json = manifest.to_json();

    let parsed = Manifest::from_json(&json, "test")?;
    let document: serde_json::Value = serde_json::from_str(&json)?;

    assert_eq!(parsed, manifest);
    for field in [
        "observation_dim",
        "action_dim",
        "observation_normalization",
        "action_bounds",
        "inputs",
        "outputs",
    ] {
        assert!(document.get(field).is_some(), "{field} missing");
    }
    assert_eq!(
        document["inputs"][0]["shape"],
        serde_json::json!(["batch", 3])
    );
    Ok(())
}

#[test]
fn invalid_manifest_fields_are_named() -> Result<()> {
    let policy = LinearPolicy::default();
    let good = policy.manifest("v1", &policy.onnx_bytes());
    type Change = Box<dyn Fn(&mut Manifest)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|m| m.format_version = 1),
            "format_version is 1, expected 2",
        ),
        (
            Box::new(|m| m.observation_normalization.std[1] = 0.0),
            "observation_normalization.std[1]",
        ),
        (
            Box::new(|m| m.action_bounds.low[0] = 2.0),
            "action_bounds.low[0]",
        ),
        (
            Box::new(|m| m.action_bounds.high.pop().map(drop).unwrap_or(())),
            "action_bounds.high is 1 entries",
        ),
        (
            Box::new(|m| m.networks.policy.sha256 = "xyz".into()),
            "networks.policy.sha256",
        ),
        (
            Box::new(|m| m.networks.policy.file = "../evil.onnx".into()),
            "networks.policy.file",
        ),
        (
            Box::new(|m| m.inputs[0].name = "obs".into()),
            "inputs is [obs: [\"batch\", 3]]",
        ),
        (Box::new(|m| m.segment_length = 0), "segment_length is 0"),
        (Box::new(|m| m.version = "current".into()), "version"),
    ];
    for (change, message) in cases {
        let mut manifest = good.clone();
        change(&mut manifest);
        let error = Manifest::from_json(&manifest.to_json(), "m.json").unwrap_err();
        assert!(error.to_string().contains(message), "{message}: {error}");
    }
    Ok(())
}

#[test]
fn mismatch_with_data_or_robot_names_field_expected_and_found() -> Result<()> {
    let policy = LinearPolicy::default();
    let manifest = policy.manifest("v1", &policy.onnx_bytes());

    let robot = Expectation {
        observation_dim: Some((39, "the robot".into())),
        ..Expectation::default()
    };
    let error = manifest.check(&robot).unwrap_err().to_string();
    assert_eq!(
        error,
        "model set v1 does not match the robot: manifest field observation_dim is 3, expected 39"
    );

    let data = Expectation {
        dataset_sha256: Some(("ab".repeat(32), "dataset dial-turn.npz".into())),
        ..Expectation::default()
    };
    let error = manifest.check(&data).unwrap_err().to_string();
    assert!(error.contains("data.dataset_sha256"), "{error}");
    assert!(
        error.contains(&format!(
            "is {DATASET_SHA256}, expected {}",
            "ab".repeat(32)
        )),
        "{error}"
    );

    let matching = Expectation {
        observation_dim: Some((3, "the robot".into())),
        action_dim: Some((2, "the robot".into())),
        segment_length: Some((25, "the store".into())),
        dataset_sha256: Some((DATASET_SHA256.into(), "the dataset".into())),
        observation_names: None,
    };
    manifest.check(&matching)?;
    Ok(())
}

#[test]
fn install_renames_a_complete_set_into_place() -> Result<()> {
    let root = temp_dir("registry-install");
    let registry = Registry::open(&root, 3)?;

    install(&registry, "v1")?;
    let set = registry.load("v1")?;

    assert_eq!(set.path, root.join("v1"));
    assert_eq!(set.manifest.version, "v1");
    assert!(set.policy_path().is_file());
    // No staging folder is left behind.
    assert_eq!(visible_entries(&root)?, ["v1"]);
    assert!(matches!(
        registry.install_from_dir("v1", &root.join("v1")),
        Err(RegistryError::AlreadyInstalled { .. })
    ));
    Ok(())
}

#[test]
fn failed_install_leaves_no_version_and_no_staging_folder() -> Result<()> {
    let root = temp_dir("registry-failed");
    let registry = Registry::open(&root, 3)?;

    // A staged set whose file differs from the hash in its manifest never becomes visible.
    let policy = LinearPolicy::default();
    let staging = registry.stage("v1")?;
    let onnx = policy.onnx_bytes();
    staging.write_file(
        MANIFEST_FILE,
        policy.manifest("v1", &onnx).to_json().as_bytes(),
    )?;
    staging.write_file(POLICY_FILE, &onnx[..onnx.len() / 2])?;
    let error = staging.commit().unwrap_err();
    assert!(matches!(error, RegistryError::FileHash { .. }), "{error}");
    assert!(error.to_string().contains(&sha256_bytes(&onnx)), "{error}");

    // A staging folder dropped half-written disappears too.
    let staging = registry.stage("v2")?;
    staging.write_file(POLICY_FILE, &onnx)?;
    drop(staging);

    assert!(
        visible_entries(&root)?.is_empty(),
        "{:?}",
        visible_entries(&root)?
    );
    assert!(matches!(
        registry.load("v1"),
        Err(RegistryError::NotInstalled { .. })
    ));
    Ok(())
}

#[test]
fn tampered_file_is_rejected_on_load() -> Result<()> {
    let root = temp_dir("registry-tampered");
    let registry = Registry::open(&root, 3)?;
    install(&registry, "v1")?;

    fs::write(root.join("v1").join(POLICY_FILE), b"not onnx")?;

    let error = registry.load("v1").unwrap_err().to_string();
    assert!(error.contains("policy.onnx has SHA-256"), "{error}");
    Ok(())
}

#[test]
fn manifest_version_must_equal_folder_name() -> Result<()> {
    let source = temp_dir("registry-version-source");
    LinearPolicy::default().write_set(&source, "v7")?;
    let registry = Registry::open(temp_dir("registry-version"), 3)?;

    let error = registry
        .install_from_dir("v8", &source)
        .unwrap_err()
        .to_string();

    assert!(error.contains("manifest says version \"v7\""), "{error}");
    assert!(matches!(
        registry.stage("../x"),
        Err(RegistryError::InvalidVersion { .. })
    ));
    Ok(())
}

#[test]
fn activate_switches_pointer_and_rollback_returns() -> Result<()> {
    let root = temp_dir("registry-activate");
    let registry = Registry::open(&root, 5)?;
    install(&registry, "v1")?;
    install(&registry, "v2")?;
    assert_eq!(registry.current()?, None);
    assert!(matches!(
        registry.rollback(None),
        Err(RegistryError::NoCurrent { .. })
    ));

    registry.activate("v1")?;
    assert!(matches!(
        registry.rollback(None),
        Err(RegistryError::NoPrevious { .. })
    ));
    let pointer = registry.activate("v2")?;
    assert_eq!(pointer.version, "v2");
    assert_eq!(pointer.previous.as_deref(), Some("v1"));
    assert_eq!(registry.load_current()?.version, "v2");

    let pointer = registry.rollback(None)?;
    assert_eq!(
        (pointer.version.as_str(), pointer.previous.as_deref()),
        ("v1", Some("v2"))
    );
    assert_eq!(registry.current()?, Some(pointer));

    let error = registry.activate("v9").unwrap_err().to_string();
    assert!(
        error.contains("v9 is not installed") && error.contains("v1, v2"),
        "{error}"
    );
    // The pointer file is replaced, never left as a temporary.
    assert_eq!(visible_entries(&root)?, ["current", "v1", "v2"]);
    Ok(())
}

#[test]
fn install_keeps_newest_versions_and_the_active_ones() -> Result<()> {
    let root = temp_dir("registry-keep");
    let registry = Registry::open(&root, 2)?;
    install(&registry, "v1")?;
    registry.activate("v1")?;
    for version in ["v2", "v3", "v4"] {
        // Folder times order the versions; keep them apart.
        std::thread::sleep(std::time::Duration::from_millis(20));
        install(&registry, version)?;
    }

    // v1 is active, so it stays although it is the oldest; v2 goes.
    assert_eq!(registry.versions()?, ["v1", "v3", "v4"]);

    registry.activate("v4")?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    install(&registry, "v5")?;
    // v1 is still the previous version; v3 is beyond the two newest.
    assert_eq!(registry.versions()?, ["v1", "v4", "v5"]);
    Ok(())
}

#[test]
fn zero_keep_is_rejected() {
    let error = Registry::open(temp_dir("registry-zero"), 0).unwrap_err();
    assert!(error.to_string().contains("keep = 0"), "{error}");
}
