//! Camera frames over DDS: a robot node publishes Transition steps and camera images
//! (`sensor_msgs/Image` or `sensor_msgs/CompressedImage`, some of them invalid), the live
//! recorder stores one frame per step, and the media service returns a segment's frames.
//!
//! Each step's image has its own colour, so the test checks that every stored frame
//! belongs to the step it is stored with. Run through `.ci/netns-run`, which gives the
//! test a private loopback-only network.

#[path = "transport_netns.rs"]
mod transport_netns;

use std::io::Cursor;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clarify::media::{CameraMessageType, CameraSource, ClipSettings, MediaService, SegmentMedia};
use clarify::msg::{CompressedImage, Header, Image, Time, Transition};
use clarify::recorder::{LiveRecorder, RecorderConfig, TransitionSource};
use clarify::store::Store;
use clarify::transport::dds::DdsNode;
use clarify::transport::{NodeConfig, Publish, QosConfig, Transport};
use image::{ImageFormat, Rgb, RgbImage};

const TRANSITION_TOPIC: &str = "/camera_test/transitions";
const CAMERA_TOPIC: &str = "/camera_test/image";
const STEPS_PER_EPISODE: u32 = 12;
const EPISODES: u64 = 2;
/// Every this many steps the image before the step is invalid.
const INVALID_EVERY: u32 = 5;
const WIDTH: u32 = 16;
const HEIGHT: u32 = 12;

/// Colour of the image published before step `step` of episode `episode`.
fn colour(episode: u64, step: u32) -> [u8; 3] {
    let index = episode as u32 * STEPS_PER_EPISODE + step;
    [
        (index * 9) as u8,
        255 - (index * 9) as u8,
        60 + (episode as u8) * 120,
    ]
}

fn is_invalid(step: u32) -> bool {
    step % INVALID_EVERY == INVALID_EVERY - 1
}

fn header() -> Header {
    Header {
        stamp: Time::now(),
        frame_id: "camera".into(),
    }
}

/// Builds a bgr8 image of one colour. An invalid one lacks its last byte.
fn raw_image(rgb: [u8; 3], invalid: bool) -> Image {
    let mut data = Vec::new();
    for _ in 0..WIDTH * HEIGHT {
        data.extend_from_slice(&[rgb[2], rgb[1], rgb[0]]);
    }
    if invalid {
        data.pop();
    }
    Image {
        header: header(),
        height: HEIGHT,
        width: WIDTH,
        encoding: "bgr8".into(),
        is_bigendian: 0,
        step: WIDTH * 3,
        data,
    }
}

/// Builds a JPEG of one colour. An invalid one declares the wrong format.
fn compressed_image(rgb: [u8; 3], invalid: bool) -> Result<CompressedImage> {
    let image = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb(rgb));
    let mut data = Vec::new();
    image.write_to(&mut Cursor::new(&mut data), ImageFormat::Jpeg)?;
    Ok(CompressedImage {
        header: header(),
        format: if invalid { "png" } else { "jpeg" }.into(),
        data,
    })
}

fn node(name: &str, domain_id: u16) -> Result<DdsNode> {
    Ok(DdsNode::new(NodeConfig {
        name: name.into(),
        namespace: "/".into(),
        domain_id,
    })?)
}

/// Records a stream of two episodes with images of `message_type` and checks the store
/// and the media service.
fn record_and_read_frames(message_type: CameraMessageType, domain_id: u16) -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store_path = folder.path().join("camera.sqlite");
    let reliable = QosConfig {
        depth: 100,
        ..QosConfig::default()
    };
    let config = RecorderConfig {
        dataset_name: "camera".into(),
        transition: Some(TransitionSource {
            topic: TRANSITION_TOPIC.into(),
            observation_size: 2,
            action_size: 1,
        }),
        camera: Some(CameraSource {
            qos: reliable,
            ..CameraSource::new(CAMERA_TOPIC, message_type)
        }),
        qos: reliable,
        log_interval_secs: 0.0,
        ..RecorderConfig::default()
    };

    let mut robot = node("camera_robot", domain_id)?;
    let mut recorder_node = node("camera_recorder", domain_id)?;
    let transitions = robot.create_publisher::<Transition>(TRANSITION_TOPIC, &reliable)?;
    // Only the publisher of the tested type exists, because a topic has one type.
    let raw_images = match message_type {
        CameraMessageType::Image => Some(robot.create_publisher::<Image>(CAMERA_TOPIC, &reliable)?),
        CameraMessageType::CompressedImage => None,
    };
    let compressed_images = match message_type {
        CameraMessageType::CompressedImage => {
            Some(robot.create_publisher::<CompressedImage>(CAMERA_TOPIC, &reliable)?)
        }
        CameraMessageType::Image => None,
    };
    let recorder = LiveRecorder::start(&mut recorder_node, &config, Store::open(&store_path)?)?;

    let deadline = Instant::now() + Duration::from_secs(20);
    for topic in [TRANSITION_TOPIC, CAMERA_TOPIC] {
        while robot.subscription_count(topic)? < 1 {
            ensure!(
                Instant::now() < deadline,
                "no subscription to {topic} in 20 s"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
    // Discovery of the publisher by the subscriber can lag behind the other direction.
    thread::sleep(Duration::from_millis(500));

    let mut sent_invalid = 0;
    for episode in 0..EPISODES {
        for step in 0..STEPS_PER_EPISODE {
            let invalid = is_invalid(step);
            sent_invalid += u64::from(invalid);
            let rgb = colour(episode, step);
            if let Some(publisher) = &raw_images {
                publisher.publish(raw_image(rgb, invalid))?;
            }
            if let Some(publisher) = &compressed_images {
                publisher.publish(compressed_image(rgb, invalid)?)?;
            }
            // The image and the step travel on different topics, so the image gets a head
            // start to arrive first.
            thread::sleep(Duration::from_millis(40));
            transitions.publish(Transition {
                header: header(),
                episode_id: episode,
                step,
                observation: vec![episode as f32, step as f32],
                action: vec![0.5],
                reward: 0.0,
                has_reward: false,
                terminated: step == STEPS_PER_EPISODE - 1,
                truncated: false,
            })?;
            thread::sleep(Duration::from_millis(10));
        }
    }
    let sent_images = EPISODES * u64::from(STEPS_PER_EPISODE);

    // Wait until every image and step is counted, then stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let camera = recorder.camera_counters().context("camera counters")?;
        let steps = recorder.counters().steps_recorded;
        if camera.received >= sent_images && steps >= sent_images {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "recorder counted {camera:?} and {steps} steps of {sent_images}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let summary = recorder.stop()?;
    let camera = summary
        .camera
        .clone()
        .context("camera counters in the summary")?;
    println!("{}", serde_json::to_string_pretty(&camera)?);

    // Every image is accounted for: the invalid ones dropped with their reason, every
    // valid one attached to the step published after it and written.
    let valid = sent_images - sent_invalid;
    let reason = match message_type {
        CameraMessageType::Image => "wrong_size",
        CameraMessageType::CompressedImage => "invalid",
    };
    assert_eq!(camera.received, sent_images, "{camera:?}");
    assert_eq!(camera.dropped_for(reason), sent_invalid, "{camera:?}");
    assert_eq!(camera.converted, valid, "{camera:?}");
    assert_eq!(camera.attached, valid, "{camera:?}");
    assert_eq!(camera.written, valid, "{camera:?}");
    assert_eq!(camera.lost, 0, "{camera:?}");
    // Invalid images cost no steps.
    assert_eq!(summary.counters.steps_written, sent_images);
    drop(summary);

    let service = MediaService::open(
        &store_path,
        &ClipSettings {
            enabled: false,
            ..ClipSettings::default()
        },
    )?;
    let store = Store::open(&store_path)?;
    let datasets = store.datasets()?;
    let episodes = store.episodes(datasets[0].id)?;
    assert_eq!(episodes.len(), EPISODES as usize);
    for (episode_index, episode) in episodes.iter().enumerate() {
        assert_eq!(episode.step_count, STEPS_PER_EPISODE as usize);
        let media = service.segment_media(episode.id, 2, 8)?;
        let SegmentMedia::Frames { count, frames } = &media else {
            bail!("expected frames, got {media:?}");
        };
        let expected_steps: Vec<usize> = (2..10).filter(|step| !is_invalid(*step as u32)).collect();
        let steps: Vec<usize> = frames.iter().map(|frame| frame.step).collect();
        assert_eq!(steps, expected_steps);
        assert_eq!(*count, expected_steps.len());
        let json = serde_json::to_value(&media)?;
        assert_eq!(json["kind"], "frames");
        assert_eq!(json["count"], expected_steps.len());
        assert_eq!(json["frames"][0]["content_type"], "image/jpeg");

        for step in 0..STEPS_PER_EPISODE {
            let frame = service.frame_bytes(episode.id, step as usize)?;
            if is_invalid(step) {
                assert_eq!(frame, None, "step {step}");
                continue;
            }
            let frame = frame.with_context(|| format!("no frame at step {step}"))?;
            assert_eq!(frame.content_type, "image/jpeg");
            let decoded = image::load_from_memory(&frame.data)?.to_rgb8();
            assert_eq!(decoded.dimensions(), (WIDTH, HEIGHT));
            let pixel = decoded.get_pixel(WIDTH / 2, HEIGHT / 2).0;
            let expected = colour(episode_index as u64, step);
            for channel in 0..3 {
                let difference = i32::from(pixel[channel]) - i32::from(expected[channel]);
                assert!(
                    difference.abs() <= 12,
                    "step {step}: pixel {pixel:?}, expected {expected:?}"
                );
            }
        }
    }

    // A step outside the episode is an error, not an empty result.
    let error = service
        .frame_bytes(episodes[0].id, STEPS_PER_EPISODE as usize)
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    Ok(())
}

#[test]
fn raw_images_stored_per_step() -> Result<()> {
    record_and_read_frames(CameraMessageType::Image, 83)
}

#[test]
fn compressed_images_stored_per_step() -> Result<()> {
    record_and_read_frames(CameraMessageType::CompressedImage, 84)
}
