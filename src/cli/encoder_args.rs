//! Encoder options shared by the benchmark commands.

use clap::Args;
use clarify::learn::encoder::{
    AmbiguityLossMode, EmbedToken, EncoderConfig, EncoderPreset, TimeEmbedding,
};

/// CLARIFY encoder settings: a preset, its schedule, and the switches that reproduce the
/// official CLARIFY code (Mu et al., ICML 2025) where it departs from the paper.
#[derive(Debug, Args)]
pub struct EncoderArgs {
    /// Encoder preset: cpu (small network, short schedule) or paper.
    #[arg(long, value_name = "PRESET", default_value = "cpu", value_parser = parse_preset)]
    pub encoder_preset: EncoderPreset,

    /// Encoder iterations after the first round (replaces the preset's).
    #[arg(long, value_name = "N")]
    pub encoder_iterations: Option<usize>,

    /// Encoder iterations after each later round (replaces the preset's).
    #[arg(long, value_name = "N")]
    pub encoder_later_iterations: Option<usize>,

    /// Aggregator output used as the segment embedding: full-segment (the position that has
    /// attended to every step) or index0 (the official code's position, which has seen only
    /// the segment's last state).
    #[arg(long, value_name = "TOKEN", value_parser = parse_embed_token)]
    pub embed_token: Option<EmbedToken>,

    /// Timesteps of preference and embedded segments: true, random (the official code's) or
    /// none.
    #[arg(long, value_name = "MODE", value_parser = parse_time_embedding)]
    pub time_embedding: Option<TimeEmbedding>,

    /// Ambiguity loss: paper (clear pairs apart, ambiguous pairs together) or official (as
    /// the official code evaluates it).
    #[arg(long, value_name = "MODE", value_parser = parse_ambiguity_loss)]
    pub ambiguity_loss: Option<AmbiguityLossMode>,

    /// Feed preference and embedded segments unnormalised, as the official code does.
    #[arg(long)]
    pub raw_preference_states: bool,

    /// Put the aggregator output back in forward time order before it conditions the
    /// decoder (the official code does not).
    #[arg(long)]
    pub flip_decoder_embeddings: bool,
}

impl EncoderArgs {
    /// Returns the preset's settings with the given options applied.
    pub fn config(&self) -> EncoderConfig {
        let mut config = EncoderConfig::preset(self.encoder_preset);
        if let Some(iterations) = self.encoder_iterations {
            config.first_round_iterations = iterations;
        }
        if let Some(iterations) = self.encoder_later_iterations {
            config.later_round_iterations = iterations;
        }
        if let Some(token) = self.embed_token {
            config.embed_token = token;
        }
        if let Some(mode) = self.time_embedding {
            config.time_embedding = mode;
        }
        if let Some(mode) = self.ambiguity_loss {
            config.ambiguity_loss_mode = mode;
        }
        if self.raw_preference_states {
            config.normalize_preference_states = false;
        }
        if self.flip_decoder_embeddings {
            config.flip_decoder_embeddings = true;
        }
        config
    }
}

fn parse_preset(text: &str) -> Result<EncoderPreset, String> {
    match text.to_ascii_lowercase().as_str() {
        "cpu" => Ok(EncoderPreset::Cpu),
        "paper" => Ok(EncoderPreset::Paper),
        _ => Err(format!("invalid preset {text:?}: expected cpu or paper")),
    }
}

fn parse_embed_token(text: &str) -> Result<EmbedToken, String> {
    match text.to_ascii_lowercase().as_str() {
        "full-segment" => Ok(EmbedToken::FullSegment),
        "index0" => Ok(EmbedToken::OfficialIndex0),
        _ => Err(format!(
            "invalid embedding token {text:?}: expected full-segment or index0"
        )),
    }
}

fn parse_time_embedding(text: &str) -> Result<TimeEmbedding, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(TimeEmbedding::True),
        "random" => Ok(TimeEmbedding::Random),
        "none" => Ok(TimeEmbedding::None),
        _ => Err(format!(
            "invalid time embedding {text:?}: expected true, random or none"
        )),
    }
}

fn parse_ambiguity_loss(text: &str) -> Result<AmbiguityLossMode, String> {
    match text.to_ascii_lowercase().as_str() {
        "paper" => Ok(AmbiguityLossMode::Paper),
        "official" => Ok(AmbiguityLossMode::Official),
        _ => Err(format!(
            "invalid ambiguity loss {text:?}: expected paper or official"
        )),
    }
}
