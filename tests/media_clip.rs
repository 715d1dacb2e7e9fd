//! Rendered clips through the media service: a real render of a generated simulator
//! dataset, the disk cache on a second request, a failed render that is not retried, and
//! a dataset without simulator state.
//!
//! The tests run the renderer from the project's Python environment, `.venv` at the
//! repository root (created by `.ci/setup`), or from the interpreter in `CLARIFY_PYTHON`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clarify::Store;
use clarify::media::{ClipSettings, ClipStateWord, MediaService, SegmentMedia};
use clarify::store::{EpisodeId, ImportOptions, import_npz};
use common::NpzFixture;

/// Maximum wait for one small render. A 4-step 64×48 clip is expected to take a few seconds
/// on 2 cores, most of it Python and MuJoCo start-up.
const RENDER_TIMEOUT: Duration = Duration::from_secs(180);

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CLARIFY_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let path = repository().join(".venv/bin/python");
    ensure!(
        path.exists(),
        "Python environment not found at {}: run .ci/setup, or set CLARIFY_PYTHON",
        path.display()
    );
    Ok(path)
}

/// Generates a dial-turn dataset of 2 episodes of 20 steps with simulator state.
fn generate_dataset(folder: &Path) -> Result<PathBuf> {
    let path = folder.join("dial-turn.npz");
    let output = Command::new(python()?)
        .args(["-m", "clarify_sim", "--log-level", "WARNING", "generate"])
        .args([
            "--task",
            "dial-turn",
            "--episodes",
            "2",
            "--episode-steps",
            "20",
        ])
        .args(["--seed", "5", "--out"])
        .arg(&path)
        .env("PYTHONPATH", repository().join("sim"))
        .output()
        .context("failed to start the Python interpreter")?;
    if !output.status.success() {
        bail!(
            "clarify_sim generate failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(path)
}

fn clip_settings(folder: &Path) -> Result<ClipSettings> {
    Ok(ClipSettings {
        cache_dir: folder.join("clips"),
        python: python()?,
        sim_dir: repository().join("sim"),
        width: 64,
        height: 48,
        ..ClipSettings::default()
    })
}

/// Imports `npz` into a new store in `folder` and returns the store path and the id of
/// the dataset's first episode.
fn import(folder: &Path, npz: &Path) -> Result<(PathBuf, EpisodeId)> {
    let store_path = folder.join("store.sqlite");
    let mut store = Store::open(&store_path)?;
    let outcome = import_npz(&mut store, npz, &ImportOptions::default())?;
    let dataset = outcome.summary().dataset.id;
    let episodes = store.episodes(dataset)?;
    Ok((store_path, episodes[0].id))
}

fn clip_state(media: &SegmentMedia) -> Result<(ClipStateWord, Option<String>)> {
    match media {
        SegmentMedia::Clip { state, reason } => Ok((*state, reason.clone())),
        other => bail!("expected a clip, got {other:?}"),
    }
}

/// Asks for the segment's media until the clip leaves the pending state.
fn wait_for_clip(
    service: &MediaService,
    episode: EpisodeId,
    start: usize,
    length: usize,
) -> Result<(ClipStateWord, Option<String>)> {
    let deadline = Instant::now() + RENDER_TIMEOUT;
    loop {
        let state = clip_state(&service.segment_media(episode, start, length)?)?;
        if state.0 != ClipStateWord::Pending {
            return Ok(state);
        }
        ensure!(
            Instant::now() < deadline,
            "the clip was still pending after {RENDER_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Returns the cached clip files (not the renderer's temporary files).
fn cached_clips(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut clips = Vec::new();
    for entry in fs::read_dir(folder)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if name.ends_with(".webp") && !name.starts_with('.') {
            clips.push(path);
        }
    }
    Ok(clips)
}

#[test]
fn simulator_segment_renders_and_is_cached() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let npz = generate_dataset(folder.path())?;
    let (store_path, episode) = import(folder.path(), &npz)?;
    let settings = clip_settings(folder.path())?;

    let service = MediaService::open(&store_path, &settings)?;
    let first = service.segment_media(episode, 3, 4)?;
    assert_eq!(clip_state(&first)?, (ClipStateWord::Pending, None));
    assert_eq!(
        serde_json::to_value(&first)?,
        serde_json::json!({"kind": "clip", "state": "pending"})
    );
    assert_eq!(service.clip_bytes(episode, 3, 4)?, None);

    let started = Instant::now();
    let (state, reason) = wait_for_clip(&service, episode, 3, 4)?;
    println!("render took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(state, ClipStateWord::Ready, "{reason:?}");
    let clip = service
        .clip_bytes(episode, 3, 4)?
        .context("a ready clip has bytes")?;
    assert_eq!(clip.content_type, "image/webp");
    assert_eq!(&clip.data[..4], b"RIFF");
    assert_eq!(&clip.data[8..12], b"WEBP");

    let files = cached_clips(&settings.cache_dir)?;
    assert_eq!(files.len(), 1, "{files:?}");
    let modified = fs::metadata(&files[0])?.modified()?;

    // A new service on the same cache folder finds the clip on disk: ready at the first
    // request, with the same file untouched.
    drop(service);
    let service = MediaService::open(&store_path, &settings)?;
    let again = service.segment_media(episode, 3, 4)?;
    assert_eq!(clip_state(&again)?, (ClipStateWord::Ready, None));
    assert_eq!(fs::metadata(&files[0])?.modified()?, modified);
    assert_eq!(cached_clips(&settings.cache_dir)?.len(), 1);
    assert_eq!(service.clip_bytes(episode, 3, 4)?, Some(clip));

    // Another segment is another clip.
    let other = service.segment_media(episode, 0, 2)?;
    assert_eq!(clip_state(&other)?.0, ClipStateWord::Pending);

    // A segment outside the episode is an error naming the episode's length.
    let error = service.segment_media(episode, 18, 5).unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    assert!(error.to_string().contains("20 steps"), "{error}");
    Ok(())
}

#[test]
fn failed_render_not_retried() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let npz = generate_dataset(folder.path())?;
    let (store_path, episode) = import(folder.path(), &npz)?;
    let settings = ClipSettings {
        camera: "no-such-camera".into(),
        ..clip_settings(folder.path())?
    };

    let service = MediaService::open(&store_path, &settings)?;
    assert_eq!(
        clip_state(&service.segment_media(episode, 0, 3)?)?.0,
        ClipStateWord::Pending
    );
    let (state, reason) = wait_for_clip(&service, episode, 0, 3)?;
    assert_eq!(state, ClipStateWord::Failed);
    let reason = reason.context("a failed clip has a reason")?;
    assert!(
        reason.contains("unknown camera 'no-such-camera'"),
        "{reason}"
    );

    // The failure is kept: the next requests return it at once and start no render.
    let started = Instant::now();
    let again = service.segment_media(episode, 0, 3)?;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(clip_state(&again)?, (ClipStateWord::Failed, Some(reason)));
    assert!(cached_clips(&settings.cache_dir)?.is_empty());
    assert_eq!(service.clip_bytes(episode, 0, 3)?, None);
    Ok(())
}

#[test]
fn dataset_without_state_unavailable() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let npz = NpzFixture::valid(&[12, 8], &[0.5; 20]).write("media-no-state.npz")?;
    fs::write(npz.with_extension("json"), r#"{"task": "dial-turn"}"#)?;
    let (store_path, episode) = import(folder.path(), &npz)?;
    let settings = clip_settings(folder.path())?;

    let service = MediaService::open(&store_path, &settings)?;
    let media = service.segment_media(episode, 0, 5)?;
    let (state, reason) = clip_state(&media)?;
    assert_eq!(state, ClipStateWord::Unavailable);
    let reason = reason.context("an unavailable clip has a reason")?;
    assert!(reason.contains("no simulator state"), "{reason}");
    assert!(
        reason.contains("rand_vecs, qpos, qvel, mocap_pos, mocap_quat missing"),
        "{reason}"
    );
    let json = serde_json::to_value(&media)?;
    assert_eq!(json["kind"], "clip");
    assert_eq!(json["state"], "unavailable");
    assert!(cached_clips(&settings.cache_dir)?.is_empty());

    // Turning clips off gives no media, with the reason.
    let off = MediaService::open(
        &store_path,
        &ClipSettings {
            enabled: false,
            ..settings
        },
    )?;
    let media = off.segment_media(episode, 0, 5)?;
    let SegmentMedia::None { reason } = media else {
        bail!("expected no media, got {media:?}");
    };
    assert!(reason.contains("clips.enabled is false"), "{reason}");
    Ok(())
}
