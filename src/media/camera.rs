//! Camera frames of a real robot: the camera topic setting, the conversion of
//! `sensor_msgs/Image` and `sensor_msgs/CompressedImage` messages into browser images, and
//! the counts of what happened to each frame.
//!
//! Raw images (`rgb8`, `bgr8`, `rgba8`, `bgra8`, `mono8`) are downscaled to at most
//! `max_width` pixels wide and encoded as JPEG. Compressed images are kept as received
//! when they are JPEG or PNG, after a check that the bytes match the declared format.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageBuffer, ImageFormat, ImageReader, Luma, Rgb};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::msg::{CompressedImage, Image, RosMessage};
use crate::store::FrameFormat;
use crate::transport::QosConfig;

/// Default JPEG quality of encoded raw images, 1 to 100.
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
/// Default largest width of a stored raw image in pixels.
pub const DEFAULT_MAX_WIDTH: u32 = 640;
/// Default largest size of a stored compressed image in bytes (4 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// Message type of a camera topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CameraMessageType {
    /// `sensor_msgs/msg/Image`: raw pixels.
    #[serde(rename = "sensor_msgs/msg/Image", alias = "sensor_msgs/Image")]
    Image,
    /// `sensor_msgs/msg/CompressedImage`: a JPEG or PNG file.
    #[serde(
        rename = "sensor_msgs/msg/CompressedImage",
        alias = "sensor_msgs/CompressedImage"
    )]
    CompressedImage,
}

impl CameraMessageType {
    /// Returns the full ROS type name.
    pub fn type_name(self) -> String {
        match self {
            CameraMessageType::Image => Image::type_name(),
            CameraMessageType::CompressedImage => CompressedImage::type_name(),
        }
    }
}

/// A camera topic whose images the recorder stores with the recorded steps, at most one
/// frame per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSource {
    /// Topic name.
    pub topic: String,
    /// Message type of the topic.
    #[serde(rename = "type")]
    pub message_type: CameraMessageType,
    /// JPEG quality of encoded raw images, 1 (smallest) to 100 (best).
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    /// Raw images wider than this many pixels are scaled down to this width, keeping the
    /// aspect ratio. Compressed images are stored as received.
    #[serde(default = "default_max_width")]
    pub max_width: u32,
    /// Compressed images larger than this many bytes are dropped.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// QoS of the subscription. The default is ROS 2's sensor-data profile (best effort,
    /// keep last 5), which matches both best-effort and reliable camera publishers and
    /// keeps few images in memory.
    #[serde(default = "QosConfig::sensor_data")]
    pub qos: QosConfig,
}

fn default_jpeg_quality() -> u8 {
    DEFAULT_JPEG_QUALITY
}

fn default_max_width() -> u32 {
    DEFAULT_MAX_WIDTH
}

fn default_max_frame_bytes() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}

impl CameraSource {
    /// Creates a source with the default quality and size limits.
    pub fn new(topic: impl Into<String>, message_type: CameraMessageType) -> Self {
        Self {
            topic: topic.into(),
            message_type,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            max_width: DEFAULT_MAX_WIDTH,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            qos: QosConfig::sensor_data(),
        }
    }

    /// Checks the settings; returns the name of the first invalid one, its value and what
    /// is expected.
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        if self.topic.is_empty() {
            return Err(("camera.topic", "\"\"".into(), "a ROS topic name"));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err((
                "camera.jpeg_quality",
                self.jpeg_quality.to_string(),
                "1 to 100",
            ));
        }
        if self.max_width == 0 {
            return Err(("camera.max_width", "0".into(), "at least 1 pixel"));
        }
        if self.max_frame_bytes == 0 {
            return Err(("camera.max_frame_bytes", "0".into(), "at least 1 byte"));
        }
        if self.qos.validate().is_err() {
            return Err((
                "camera.qos",
                format!("{:?}", self.qos),
                "a QoS depth of at least 1",
            ));
        }
        Ok(())
    }
}

/// An image ready for the store: encoded bytes and the capture time.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedFrame {
    /// Image file format of `data`.
    pub format: FrameFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded image.
    pub data: Vec<u8>,
    /// Header stamp in Unix nanoseconds, `None` when the stamp is zero (unset).
    pub stamp_ns: Option<i64>,
}

/// Reason a camera message was not turned into a frame.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The pixel encoding is not one that can be converted.
    #[error("unsupported image encoding {encoding:?}: expected rgb8, bgr8, rgba8, bgra8 or mono8")]
    UnsupportedEncoding {
        /// The message's `encoding`.
        encoding: String,
    },
    /// Width or height is zero.
    #[error("invalid image size {width}×{height}: expected at least 1×1 pixels")]
    EmptyImage {
        /// The message's `width`.
        width: u32,
        /// The message's `height`.
        height: u32,
    },
    /// The row length is shorter than a row of pixels.
    #[error(
        "invalid image step {step} bytes for width {width} in {encoding:?}: expected at least \
         {min_step} bytes per row ({width} pixels × {channels} bytes)"
    )]
    RowTooShort {
        /// The message's `step`.
        step: u32,
        /// The message's `width`.
        width: u32,
        /// The message's `encoding`.
        encoding: String,
        /// Bytes per pixel of the encoding.
        channels: u32,
        /// `width * channels`.
        min_step: u64,
    },
    /// `data` does not hold `step * height` bytes.
    #[error(
        "image data has {found} bytes, expected {expected} (height {height} × step {step}; \
         width {width} × {channels} bytes per pixel in {encoding:?})"
    )]
    WrongDataLength {
        /// Length of `data`.
        found: usize,
        /// `step * height`.
        expected: u64,
        /// The message's `width`.
        width: u32,
        /// The message's `height`.
        height: u32,
        /// The message's `step`.
        step: u32,
        /// Bytes per pixel of the encoding.
        channels: u32,
        /// The message's `encoding`.
        encoding: String,
    },
    /// The compressed format is not JPEG or PNG.
    #[error("unsupported compressed image format {format:?}: expected jpeg or png")]
    UnsupportedFormat {
        /// The message's `format`.
        format: String,
    },
    /// The bytes are not an image of the declared format.
    #[error("compressed image declared as {format:?} does not start like a {expected} file")]
    FormatMismatch {
        /// The message's `format`.
        format: String,
        /// The format the declaration names.
        expected: FrameFormat,
    },
    /// The compressed image exceeds the size limit.
    #[error("compressed image has {bytes} bytes, more than camera.max_frame_bytes = {max}")]
    TooLarge {
        /// Length of `data`.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// The compressed image's header could not be read.
    #[error("failed to read the size of a {format} image: {detail}")]
    Unreadable {
        /// The detected format.
        format: FrameFormat,
        /// The decoder's message.
        detail: String,
    },
    /// Encoding the JPEG failed.
    #[error("failed to encode a {width}×{height} image as JPEG: {detail}")]
    Encode {
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
        /// The encoder's message.
        detail: String,
    },
}

impl FrameError {
    /// Returns the counter word of the error: `wrong_size`, `unsupported` or `invalid`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::EmptyImage { .. }
            | FrameError::RowTooShort { .. }
            | FrameError::WrongDataLength { .. }
            | FrameError::TooLarge { .. } => "wrong_size",
            FrameError::UnsupportedEncoding { .. } | FrameError::UnsupportedFormat { .. } => {
                "unsupported"
            }
            FrameError::FormatMismatch { .. }
            | FrameError::Unreadable { .. }
            | FrameError::Encode { .. } => "invalid",
        }
    }
}

/// Pixel layouts of raw images that can be converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PixelLayout {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Mono,
}

impl PixelLayout {
    fn parse(encoding: &str) -> Option<Self> {
        match encoding {
            "rgb8" => Some(PixelLayout::Rgb),
            "bgr8" => Some(PixelLayout::Bgr),
            "rgba8" => Some(PixelLayout::Rgba),
            "bgra8" => Some(PixelLayout::Bgra),
            "mono8" | "8UC1" => Some(PixelLayout::Mono),
            _ => None,
        }
    }

    fn channels(self) -> u32 {
        match self {
            PixelLayout::Mono => 1,
            PixelLayout::Rgb | PixelLayout::Bgr => 3,
            PixelLayout::Rgba | PixelLayout::Bgra => 4,
        }
    }
}

/// Converts a raw image to a JPEG at most `max_width` pixels wide.
pub fn encode_image(
    message: &Image,
    max_width: u32,
    jpeg_quality: u8,
) -> Result<EncodedFrame, FrameError> {
    let layout =
        PixelLayout::parse(&message.encoding).ok_or_else(|| FrameError::UnsupportedEncoding {
            encoding: message.encoding.clone(),
        })?;
    let (width, height, step) = (message.width, message.height, message.step);
    if width == 0 || height == 0 {
        return Err(FrameError::EmptyImage { width, height });
    }
    let channels = layout.channels();
    let min_step = u64::from(width) * u64::from(channels);
    if u64::from(step) < min_step {
        return Err(FrameError::RowTooShort {
            step,
            width,
            encoding: message.encoding.clone(),
            channels,
            min_step,
        });
    }
    let expected = u64::from(step) * u64::from(height);
    if message.data.len() as u64 != expected {
        return Err(FrameError::WrongDataLength {
            found: message.data.len(),
            expected,
            width,
            height,
            step,
            channels,
            encoding: message.encoding.clone(),
        });
    }

    let rows = message.data.chunks_exact(step as usize);
    let row_bytes = min_step as usize;
    let (data, color) = if layout == PixelLayout::Mono {
        let mut pixels = Vec::with_capacity(row_bytes * height as usize);
        for row in rows {
            pixels.extend_from_slice(&row[..row_bytes]);
        }
        let gray: ImageBuffer<Luma<u8>, Vec<u8>> =
            ImageBuffer::from_raw(width, height, pixels).expect("one byte per pixel");
        let gray = downscale(gray, max_width);
        (gray, ExtendedColorType::L8)
    } else {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for row in rows {
            for pixel in row[..row_bytes].chunks_exact(channels as usize) {
                let rgb = match layout {
                    PixelLayout::Rgb | PixelLayout::Rgba => [pixel[0], pixel[1], pixel[2]],
                    PixelLayout::Bgr | PixelLayout::Bgra => [pixel[2], pixel[1], pixel[0]],
                    PixelLayout::Mono => unreachable!("mono images take the branch above"),
                };
                pixels.extend_from_slice(&rgb);
            }
        }
        let rgb: ImageBuffer<Rgb<u8>, Vec<u8>> =
            ImageBuffer::from_raw(width, height, pixels).expect("three bytes per pixel");
        let rgb = downscale(rgb, max_width);
        (rgb, ExtendedColorType::Rgb8)
    };

    let (out_width, out_height, pixels) = data;
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, jpeg_quality.clamp(1, 100))
        .encode(&pixels, out_width, out_height, color)
        .map_err(|error| FrameError::Encode {
            width: out_width,
            height: out_height,
            detail: error.to_string(),
        })?;
    Ok(EncodedFrame {
        format: FrameFormat::Jpeg,
        width: out_width,
        height: out_height,
        data: jpeg,
        stamp_ns: stamp_ns(&message.header),
    })
}

/// Scales an image down to `max_width` pixels wide, keeping the aspect ratio and a height of
/// at least 1, and returns its size and pixel bytes. Narrower images stay unchanged.
fn downscale<P>(image: ImageBuffer<P, Vec<u8>>, max_width: u32) -> (u32, u32, Vec<u8>)
where
    P: image::Pixel<Subpixel = u8> + 'static,
{
    let (width, height) = image.dimensions();
    if width <= max_width {
        return (width, height, image.into_raw());
    }
    let scaled_height = ((u64::from(height) * u64::from(max_width) + u64::from(width) / 2)
        / u64::from(width))
    .max(1) as u32;
    // Triangle (bilinear) filtering averages the dropped pixels instead of skipping them,
    // which keeps fine texture from aliasing.
    let scaled = image::imageops::resize(&image, max_width, scaled_height, FilterType::Triangle);
    (max_width, scaled_height, scaled.into_raw())
}

/// Checks a compressed image and keeps its bytes as they are.
pub fn check_compressed(
    message: &CompressedImage,
    max_frame_bytes: usize,
) -> Result<EncodedFrame, FrameError> {
    let declared = message.format.to_ascii_lowercase();
    let format = if declared.contains("jpeg") || declared.contains("jpg") {
        FrameFormat::Jpeg
    } else if declared.contains("png") {
        FrameFormat::Png
    } else {
        return Err(FrameError::UnsupportedFormat {
            format: message.format.clone(),
        });
    };
    if message.data.len() > max_frame_bytes {
        return Err(FrameError::TooLarge {
            bytes: message.data.len(),
            max: max_frame_bytes,
        });
    }
    let image_format = match format {
        FrameFormat::Jpeg => ImageFormat::Jpeg,
        FrameFormat::Png => ImageFormat::Png,
    };
    if image::guess_format(&message.data).ok() != Some(image_format) {
        return Err(FrameError::FormatMismatch {
            format: message.format.clone(),
            expected: format,
        });
    }
    let (width, height) = ImageReader::with_format(Cursor::new(&message.data), image_format)
        .into_dimensions()
        .map_err(|error| FrameError::Unreadable {
            format,
            detail: error.to_string(),
        })?;
    if width == 0 || height == 0 {
        return Err(FrameError::EmptyImage { width, height });
    }
    Ok(EncodedFrame {
        format,
        width,
        height,
        data: message.data.clone(),
        stamp_ns: stamp_ns(&message.header),
    })
}

fn stamp_ns(header: &crate::msg::Header) -> Option<i64> {
    let stamp = header.stamp;
    (!stamp.is_zero()).then(|| i64::from(stamp.sec) * 1_000_000_000 + i64::from(stamp.nanosec))
}

/// Counts of the camera topic's messages and frames, shared between the recorder's
/// threads. Every count only grows.
///
/// Every received message is either converted or dropped (`dropped` by reason). Every
/// converted frame is either attached to a step, superseded by a newer frame before the
/// next step, or still waiting for a step. Attached frames are written with their episode
/// or lost with it.
#[derive(Debug)]
pub struct CameraCounters {
    topic: String,
    received: AtomicU64,
    converted: AtomicU64,
    dropped: [AtomicU64; FRAME_DROP_REASONS.len()],
    superseded: AtomicU64,
    attached: AtomicU64,
    written: AtomicU64,
    lost: AtomicU64,
}

/// Words of the reasons for dropping a camera message, in counter order.
pub const FRAME_DROP_REASONS: [&str; 6] = [
    "wrong_size",
    "unsupported",
    "invalid",
    "stale",
    "inbox_full",
    "transport",
];

/// A snapshot of [`CameraCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CameraCounterSnapshot {
    /// The camera topic.
    pub topic: String,
    /// Messages taken from the subscription, plus those the transport dropped.
    pub received: u64,
    /// Messages turned into frames.
    pub converted: u64,
    /// Messages dropped, by reason word ([`FRAME_DROP_REASONS`]); reasons with a count of
    /// 0 are left out.
    pub dropped: BTreeMap<String, u64>,
    /// Frames replaced by a newer one before any step took them.
    pub superseded: u64,
    /// Frames attached to a recorded step.
    pub attached: u64,
    /// Attached frames written to the store.
    pub written: u64,
    /// Attached frames lost: their episode was dropped or the store failed.
    pub lost: u64,
}

impl CameraCounterSnapshot {
    /// Returns the count of drops for `reason`, 0 when there were none.
    pub fn dropped_for(&self, reason: &str) -> u64 {
        self.dropped.get(reason).copied().unwrap_or(0)
    }
}

impl CameraCounters {
    /// Creates zeroed counters for `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            received: AtomicU64::new(0),
            converted: AtomicU64::new(0),
            dropped: Default::default(),
            superseded: AtomicU64::new(0),
            attached: AtomicU64::new(0),
            written: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    /// Returns the camera topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts a message turned into a frame.
    pub fn converted(&self) {
        Self::add(&self.received, 1);
        Self::add(&self.converted, 1);
    }

    /// Counts `count` messages dropped for `reason`, one of [`FRAME_DROP_REASONS`].
    ///
    /// # Panics
    ///
    /// When `reason` is not in [`FRAME_DROP_REASONS`].
    pub fn dropped(&self, reason: &str, count: u64) {
        let index = FRAME_DROP_REASONS
            .iter()
            .position(|word| *word == reason)
            .expect("reason is one of FRAME_DROP_REASONS");
        Self::add(&self.received, count);
        Self::add(&self.dropped[index], count);
    }

    /// Counts a frame replaced before any step took it.
    pub fn superseded(&self) {
        Self::add(&self.superseded, 1);
    }

    /// Counts a frame attached to a step.
    pub fn attached(&self) {
        Self::add(&self.attached, 1);
    }

    /// Counts attached frames written to the store.
    pub fn written(&self, count: usize) {
        Self::add(&self.written, count as u64);
    }

    /// Counts attached frames lost with their episode.
    pub fn lost(&self, count: usize) {
        Self::add(&self.lost, count as u64);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CameraCounterSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CameraCounterSnapshot {
            topic: self.topic.clone(),
            received: load(&self.received),
            converted: load(&self.converted),
            dropped: FRAME_DROP_REASONS
                .iter()
                .zip(&self.dropped)
                .map(|(word, counter)| ((*word).to_owned(), load(counter)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            superseded: load(&self.superseded),
            attached: load(&self.attached),
            written: load(&self.written),
            lost: load(&self.lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Header, Time};

    fn raw(encoding: &str, width: u32, height: u32, channels: u32) -> Image {
        let step = width * channels;
        let data = (0..step * height)
            .map(|index| (index % 251) as u8)
            .collect();
        Image {
            header: Header {
                stamp: Time { sec: 5, nanosec: 7 },
                frame_id: "camera".into(),
            },
            height,
            width,
            encoding: encoding.into(),
            is_bigendian: 0,
            step,
            data,
        }
    }

    fn decode(frame: &EncodedFrame) -> image::DynamicImage {
        image::load_from_memory(&frame.data).expect("encoded frame decodes")
    }

    #[test]
    fn rgb_bgr_and_mono_encode_as_jpeg() {
        for (encoding, channels) in [
            ("rgb8", 3),
            ("bgr8", 3),
            ("rgba8", 4),
            ("bgra8", 4),
            ("mono8", 1),
        ] {
            let frame = encode_image(&raw(encoding, 8, 6, channels), 640, 90).unwrap();
            assert_eq!(frame.format, FrameFormat::Jpeg, "{encoding}");
            assert_eq!((frame.width, frame.height), (8, 6), "{encoding}");
            assert_eq!(frame.stamp_ns, Some(5_000_000_007), "{encoding}");
            let decoded = decode(&frame);
            assert_eq!((decoded.width(), decoded.height()), (8, 6), "{encoding}");
        }
    }

    #[test]
    fn bgr_channels_are_swapped() {
        // One pure-blue pixel block in BGR order (blue first) must decode as blue.
        let mut message = raw("bgr8", 16, 16, 3);
        for pixel in message.data.chunks_exact_mut(3) {
            pixel.copy_from_slice(&[255, 0, 0]);
        }
        let frame = encode_image(&message, 640, 95).unwrap();
        let rgb = decode(&frame).to_rgb8();
        let pixel = rgb.get_pixel(8, 8).0;
        assert!(pixel[2] > 200, "{pixel:?}");
        assert!(pixel[0] < 50, "{pixel:?}");
    }

    #[test]
    fn row_padding_is_skipped() {
        let mut message = raw("mono8", 5, 4, 1);
        message.step = 8;
        message.data = (0..32)
            .map(|index| if index % 8 < 5 { 200 } else { 0 })
            .collect();
        let frame = encode_image(&message, 640, 95).unwrap();
        let gray = decode(&frame).to_luma8();
        assert_eq!(gray.dimensions(), (5, 4));
        assert!(gray.pixels().all(|pixel| pixel.0[0] > 180), "{gray:?}");
    }

    #[test]
    fn wide_image_is_scaled_down() {
        let frame = encode_image(&raw("rgb8", 1280, 720, 3), 320, 80).unwrap();
        assert_eq!((frame.width, frame.height), (320, 180));
        let decoded = decode(&frame);
        assert_eq!((decoded.width(), decoded.height()), (320, 180));
    }

    #[test]
    fn wrong_data_length_names_the_values() {
        let mut message = raw("rgb8", 4, 3, 3);
        message.data.pop();
        let error = encode_image(&message, 640, 80).unwrap_err();
        assert_eq!(error.reason(), "wrong_size");
        let text = error.to_string();
        assert!(text.contains("35 bytes, expected 36"), "{text}");
        assert!(text.contains("height 3 × step 12"), "{text}");
        assert!(
            text.contains("width 4 × 3 bytes per pixel in \"rgb8\""),
            "{text}"
        );
    }

    #[test]
    fn bad_raw_images_rejected() {
        let mut short_step = raw("bgr8", 4, 2, 3);
        short_step.step = 10;
        short_step.data.truncate(20);
        let text = encode_image(&short_step, 640, 80).unwrap_err().to_string();
        assert!(text.contains("step 10 bytes for width 4"), "{text}");
        assert!(text.contains("at least 12 bytes"), "{text}");

        let text = encode_image(&raw("16UC1", 2, 2, 2), 640, 80)
            .unwrap_err()
            .to_string();
        assert!(text.contains("\"16UC1\""), "{text}");

        let empty = encode_image(&raw("rgb8", 0, 2, 3), 640, 80).unwrap_err();
        assert_eq!(
            empty,
            FrameError::EmptyImage {
                width: 0,
                height: 2
            }
        );
    }

    #[test]
    fn compressed_images_kept_as_received() {
        let jpeg = encode_image(&raw("rgb8", 10, 4, 3), 640, 80).unwrap();
        let message = CompressedImage {
            header: Header::default(),
            format: "rgb8; jpeg compressed bgr8".into(),
            data: jpeg.data.clone(),
        };
        let frame = check_compressed(&message, 1 << 20).unwrap();
        assert_eq!(frame.data, jpeg.data);
        assert_eq!((frame.width, frame.height), (10, 4));
        assert_eq!(frame.stamp_ns, None);

        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(3, 2)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let message = CompressedImage {
            header: Header::default(),
            format: "png".into(),
            data: png,
        };
        let frame = check_compressed(&message, 1 << 20).unwrap();
        assert_eq!(frame.format, FrameFormat::Png);
        assert_eq!((frame.width, frame.height), (3, 2));
    }

    #[test]
    fn bad_compressed_images_rejected() {
        let jpeg = encode_image(&raw("rgb8", 10, 4, 3), 640, 80).unwrap().data;
        let cases = [
            (
                "png",
                jpeg.clone(),
                1 << 20,
                "does not start like a image/png file",
            ),
            (
                "theora",
                jpeg.clone(),
                1 << 20,
                "unsupported compressed image format",
            ),
            (
                "jpeg",
                jpeg.clone(),
                10,
                "more than camera.max_frame_bytes = 10",
            ),
            (
                "jpeg",
                vec![0xFF, 0xD8, 0xFF, 0x00],
                1 << 20,
                "failed to read the size",
            ),
        ];
        for (format, data, max, expected) in cases {
            let message = CompressedImage {
                header: Header::default(),
                format: format.into(),
                data,
            };
            let text = check_compressed(&message, max).unwrap_err().to_string();
            assert!(text.contains(expected), "{format}: {text}");
        }
    }

    #[test]
    fn counters_add_up() {
        let counters = CameraCounters::new("/camera");
        counters.converted();
        counters.dropped("wrong_size", 2);
        counters.attached();
        counters.written(1);
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.received, 3);
        assert_eq!(snapshot.dropped_for("wrong_size"), 2);
        assert_eq!(snapshot.dropped_for("stale"), 0);
        assert_eq!((snapshot.attached, snapshot.written), (1, 1));
    }

    #[test]
    fn camera_source_parses_type_names() {
        let source: CameraSource =
            serde_json::from_str(r#"{"topic": "/camera/image_raw", "type": "sensor_msgs/Image"}"#)
                .unwrap();
        assert_eq!(source.message_type, CameraMessageType::Image);
        assert_eq!(source.jpeg_quality, DEFAULT_JPEG_QUALITY);
        assert!(
            serde_json::from_str::<CameraSource>(r#"{"topic": "/c", "type": "sensor_msgs/Joy"}"#)
                .is_err()
        );
        let bad = CameraSource {
            jpeg_quality: 0,
            ..CameraSource::new("/c", CameraMessageType::CompressedImage)
        };
        assert_eq!(bad.check().unwrap_err().0, "camera.jpeg_quality");
    }
}
