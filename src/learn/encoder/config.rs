//! Settings of the CLARIFY trajectory encoder and its training, with two presets and their
//! validation.

use serde::{Deserialize, Serialize};

use super::error::EncoderError;

/// Named starting points for [`EncoderConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderPreset {
    /// A network and schedule sized for CPU training: width 64, 2 layers and 2 heads per
    /// stack, 100 warm-up iterations, 500 iterations after the first round and 50 after each
    /// later one.
    Cpu,
    /// The network and schedule of the official CLARIFY experiments: width 256, 4 layers and
    /// 4 heads per stack, 10,000 warm-up iterations, 20,000 iterations after the first round
    /// and 500 after each later one.
    Paper,
}

/// Combination rule of the ambiguity loss L_amb over clear and ambiguous pairs. σ is the
/// logistic function and s the embedding similarity of a pair's two segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguityLossMode {
    /// mean over clear pairs of σ(s) − mean over ambiguous pairs of σ(s), an empty group
    /// contributing 0: clear pairs are pushed apart and ambiguous ones pulled together.
    #[default]
    Paper,
    /// The loss as the official CLARIFY code evaluates it: 0 without ambiguous pairs, the
    /// ambiguous mean of σ(s) when the batch has only ambiguous pairs, and the clear mean of
    /// σ(s) when it has both.
    Official,
}

/// Output position of the aggregator Φ, over the time-reversed segment, used as the segment
/// embedding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedToken {
    /// The last reversed position, which has attended to every state of the segment.
    #[default]
    FullSegment,
    /// Reversed position 0, as in the official code; under the causal mask it has seen only
    /// the segment's last state.
    OfficialIndex0,
}

/// Timesteps that the aggregator Φ sees for preference segments and embedded segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeEmbedding {
    /// The segment's own steps within its episode. With it the full-segment embedding
    /// memorises the small preference buffer by position (docs/DESIGN.md).
    True,
    /// start, start + 1, ... from a start drawn uniformly in 0..=max_timestep − H, as the
    /// official code does for preference segments. Reconstruction windows keep their true
    /// timesteps.
    #[default]
    Random,
    /// Φ adds no time embedding at all, in reconstruction windows included.
    None,
}

/// Settings of the encoder (a bidirectional decision transformer) and its training. Every
/// field has a default (the `cpu` preset), so a configuration file names only the settings
/// it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// Width of the token embeddings and of both transformer stacks.
    pub hidden_size: usize,
    /// Transformer blocks in each of the two stacks.
    pub layers: usize,
    /// Attention heads; they must divide `hidden_size`.
    pub heads: usize,
    /// Width of the segment embedding z.
    pub z_dim: usize,
    /// Inner width of each block's MLP as a multiple of `hidden_size`.
    pub mlp_ratio: usize,
    /// Dropout probability of embeddings, attention weights and residual branches.
    pub dropout: f64,
    /// Context length K: the maximum window length of the reconstruction batch.
    pub context_length: usize,
    /// Rows of the time-embedding tables; every timestep must be below it.
    pub max_timestep: usize,
    /// AdamW learning rate after warm-up.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// AdamW ε. Default 1e-8, PyTorch's default (burn's own default is 1e-5).
    pub adam_epsilon: f32,
    /// Iterations of the linear learning-rate warm-up: iteration i uses the factor
    /// min((i + 1) / warmup_iterations, 1).
    pub warmup_iterations: usize,
    /// Training iterations after the first round of answers.
    pub first_round_iterations: usize,
    /// Training iterations after each later round.
    pub later_round_iterations: usize,
    /// Reconstruction windows per iteration, and preference queries per iteration.
    pub batch_size: usize,
    /// Maximum global L2 norm of the gradients of each optimizer step.
    pub gradient_clip_norm: f64,
    /// Weight λ_norm of the norm loss.
    pub norm_loss_weight: f64,
    /// Weight λ_amb of the ambiguity loss.
    pub ambiguity_loss_weight: f64,
    /// Weight λ_quad of the quadrilateral loss.
    pub quadrilateral_loss_weight: f64,
    /// Partners drawn per clear query in the quadrilateral loss.
    pub quadrilateral_partners: usize,
    pub ambiguity_loss_mode: AmbiguityLossMode,
    pub embed_token: EmbedToken,
    pub time_embedding: TimeEmbedding,
    /// Whether preference segments and embedded segments are normalised with the dataset's
    /// state mean and std like reconstruction windows. The official code feeds them raw.
    pub normalize_preference_states: bool,
    /// Whether Φ's per-position output is put back in forward time order before it
    /// conditions the decoder. The official code does not flip it.
    pub flip_decoder_embeddings: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self::preset(EncoderPreset::Cpu)
    }
}

impl EncoderConfig {
    /// Returns the settings of `preset`.
    pub fn preset(preset: EncoderPreset) -> Self {
        let cpu = Self {
            hidden_size: 64,
            layers: 2,
            heads: 2,
            z_dim: 16,
            mlp_ratio: 4,
            dropout: 0.1,
            context_length: 50,
            max_timestep: 500,
            learning_rate: 1e-4,
            weight_decay: 1e-4,
            adam_epsilon: 1e-8,
            warmup_iterations: 100,
            first_round_iterations: 500,
            later_round_iterations: 50,
            batch_size: 64,
            gradient_clip_norm: 0.25,
            norm_loss_weight: 0.1,
            ambiguity_loss_weight: 0.1,
            quadrilateral_loss_weight: 1.0,
            quadrilateral_partners: 50,
            ambiguity_loss_mode: AmbiguityLossMode::Paper,
            embed_token: EmbedToken::FullSegment,
            time_embedding: TimeEmbedding::Random,
            normalize_preference_states: true,
            flip_decoder_embeddings: false,
        };
        match preset {
            EncoderPreset::Cpu => cpu,
            EncoderPreset::Paper => Self {
                hidden_size: 256,
                layers: 4,
                heads: 4,
                warmup_iterations: 10_000,
                first_round_iterations: 20_000,
                later_round_iterations: 500,
                ..cpu
            },
        }
    }

    /// Returns the training iterations after answer round `round` (0-based).
    pub fn iterations_for_round(&self, round: usize) -> usize {
        if round == 0 {
            self.first_round_iterations
        } else {
            self.later_round_iterations
        }
    }

    /// Returns the learning rate of iteration `iteration` (0-based) after the warm-up factor.
    pub fn learning_rate_at(&self, iteration: usize) -> f64 {
        let warmup = self.warmup_iterations.max(1) as f64;
        self.learning_rate * ((iteration as f64 + 1.0) / warmup).min(1.0)
    }

    /// Checks every setting and names the first invalid one.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let invalid = |field, value: String, expected| EncoderError::InvalidConfig {
            field,
            value,
            expected,
        };
        let positive = [
            ("hidden_size", self.hidden_size),
            ("layers", self.layers),
            ("heads", self.heads),
            ("z_dim", self.z_dim),
            ("mlp_ratio", self.mlp_ratio),
            ("context_length", self.context_length),
            ("max_timestep", self.max_timestep),
            ("batch_size", self.batch_size),
            ("quadrilateral_partners", self.quadrilateral_partners),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(invalid(field, "0".to_owned(), "at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.heads) {
            return Err(invalid(
                "heads",
                self.heads.to_string(),
                "a divisor of hidden_size",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid(
                "dropout",
                self.dropout.to_string(),
                "a value in [0, 1)",
            ));
        }
        if self.context_length > self.max_timestep {
            return Err(invalid(
                "context_length",
                self.context_length.to_string(),
                "at most max_timestep",
            ));
        }
        let positive_reals = [
            ("learning_rate", self.learning_rate),
            ("adam_epsilon", f64::from(self.adam_epsilon)),
            ("gradient_clip_norm", self.gradient_clip_norm),
        ];
        for (field, value) in positive_reals {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(field, value.to_string(), "a finite value > 0"));
            }
        }
        let non_negative = [
            ("weight_decay", f64::from(self.weight_decay)),
            ("norm_loss_weight", self.norm_loss_weight),
            ("ambiguity_loss_weight", self.ambiguity_loss_weight),
            ("quadrilateral_loss_weight", self.quadrilateral_loss_weight),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(field, value.to_string(), "a finite value ≥ 0"));
            }
        }
        Ok(())
    }
}
