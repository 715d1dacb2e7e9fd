"""Time CLARIFY encoder training iterations in PyTorch, the reference for
examples/encoder_iteration.rs.

The encoder matches clarify's (src/learn/encoder/). It is a bidirectional decision
transformer of two GPT-2 stacks with causal masks and no position embeddings. Their
blocks are pre-LayerNorm with a fused QKV projection and a 4× MLP with ReLU, dropout 0.1
acts on embeddings, attention weights and residual branches, and a final LayerNorm
closes each stack.

- The aggregator Φ reads a segment's states reversed in time, one token per step
  (LayerNorm(Linear(s) + TimeEmbedding(t))), and maps every position to an embedding z.
- The decoder reads interleaved (z_t, s_t, a_t) tokens, 3·K of them, masks left-padded
  steps and predicts a_t with tanh(Linear(·)) at the s_t tokens.

One iteration draws a batch of 64 dataset windows and 64 labelled queries. It then takes
two AdamW steps (lr 1e-4 after a linear warm-up, weight decay 1e-4, global gradient-norm
clipping at 0.25). The first minimises the masked action reconstruction loss. The second
minimises 0.1·L_norm (Φ's output on the windows) + 0.1·L_amb + 1.0·L_quad (50 partners
per clear query) on the queries' segment embeddings. The data are random, because the
cost does not depend on them.
"""

import math

import torch
from torch import nn
from torch.nn import functional

from common import configure, measure, parse_arguments, report

PRESETS = {
    "cpu": {"hidden": 64, "layers": 2, "heads": 2, "warmup_iterations": 100},
    "paper": {"hidden": 256, "layers": 4, "heads": 4, "warmup_iterations": 10_000},
}
OBSERVATION_DIM = 39
ACTION_DIM = 4
EMBEDDING_DIM = 16
SEGMENT_LENGTH = 50
BATCH_SIZE = 64
MAX_EPISODE_LENGTH = 500
DROPOUT = 0.1
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 1e-4
GRADIENT_CLIP_NORM = 0.25
NORM_WEIGHT = 0.1
AMBIGUITY_WEIGHT = 0.1
QUADRILATERAL_WEIGHT = 1.0
QUADRILATERAL_PARTNERS = 50
EPISODES = 50
# Usable buffer entries, answered left, right and "can't tell" in turn. The Rust
# example's buffer has 200 pairs that cycle through left, right, can't tell and skip,
# and training drops the skipped ones.
BUFFER_PAIRS = 150
PADDED_ACTION = -10.0
# Finite, so that the rows of padded queries, whose every earlier key is padding, stay
# defined.
PADDING_BIAS = -1e9


class CausalSelfAttention(nn.Module):
    """Multi-head attention with a fused QKV projection and an additive bias."""

    def __init__(self, hidden, heads, attention):
        super().__init__()
        self.heads = heads
        self.attention = attention
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.projection = nn.Linear(hidden, hidden)
        self.attention_dropout = nn.Dropout(DROPOUT)
        self.residual_dropout = nn.Dropout(DROPOUT)

    def forward(self, x, bias):
        batch, tokens, hidden = x.shape
        head_dim = hidden // self.heads
        q, k, v = (
            self.qkv(x)
            .view(batch, tokens, 3 * self.heads, head_dim)
            .transpose(1, 2)
            .chunk(3, 1)
        )
        if self.attention == "sdpa":
            dropout = DROPOUT if self.training else 0.0
            y = functional.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=dropout
            )
        else:
            scores = q @ k.transpose(2, 3) / math.sqrt(head_dim) + bias
            y = self.attention_dropout(scores.softmax(dim=3)) @ v
        y = y.transpose(1, 2).reshape(batch, tokens, hidden)
        return self.residual_dropout(self.projection(y))


def causal_bias(tokens):
    """Return the [1, 1, tokens, tokens] bias that is −∞ for a key after its query."""
    return torch.full((tokens, tokens), float("-inf")).triu(1)[None, None]


class Block(nn.Module):
    """A pre-LayerNorm GPT-2 block: attention, then a 4× ReLU MLP, each residual."""

    def __init__(self, hidden, heads, attention):
        super().__init__()
        self.norm_1 = nn.LayerNorm(hidden)
        self.attention = CausalSelfAttention(hidden, heads, attention)
        self.norm_2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, 4 * hidden),
            nn.ReLU(),
            nn.Linear(4 * hidden, hidden),
            nn.Dropout(DROPOUT),
        )

    def forward(self, x, bias):
        x = x + self.attention(self.norm_1(x), bias)
        return x + self.mlp(self.norm_2(x))


class Stack(nn.Module):
    """GPT-2 without position embeddings: input dropout, blocks, final LayerNorm."""

    def __init__(self, hidden, layers, heads, attention):
        super().__init__()
        self.dropout = nn.Dropout(DROPOUT)
        self.blocks = nn.ModuleList(
            Block(hidden, heads, attention) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, tokens, bias):
        x = self.dropout(tokens)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


class Aggregator(nn.Module):
    """Φ: maps time-reversed states [B, H, obs] and their timesteps [B, H] to embeddings
    [B, H, z]; reversed position j has seen original steps H−1−j to H−1."""

    def __init__(self, hidden, layers, heads, attention):
        super().__init__()
        self.embed_state = nn.Linear(OBSERVATION_DIM, hidden)
        self.embed_time = nn.Embedding(MAX_EPISODE_LENGTH, hidden)
        self.embed_norm = nn.LayerNorm(hidden)
        self.stack = Stack(hidden, layers, heads, attention)
        self.head = nn.Linear(hidden, EMBEDDING_DIM)

    def forward(self, reversed_states, reversed_timesteps):
        tokens = self.embed_state(reversed_states) + self.embed_time(reversed_timesteps)
        bias = causal_bias(reversed_states.shape[1])
        return self.head(self.stack(self.embed_norm(tokens), bias))


class Decoder(nn.Module):
    """Predicts actions [B, K, act] from interleaved (z_t, s_t, a_t) tokens, reading the
    s_t tokens; padded steps are masked out as keys."""

    def __init__(self, hidden, layers, heads, attention):
        super().__init__()
        self.embed_z = nn.Linear(EMBEDDING_DIM, hidden)
        self.embed_state = nn.Linear(OBSERVATION_DIM, hidden)
        self.embed_action = nn.Linear(ACTION_DIM, hidden)
        self.embed_time = nn.Embedding(MAX_EPISODE_LENGTH, hidden)
        self.embed_norm = nn.LayerNorm(hidden)
        self.stack = Stack(hidden, layers, heads, attention)
        self.action_head = nn.Linear(hidden, ACTION_DIM)

    def forward(self, z, states, actions, timesteps, mask):
        batch, steps, _ = states.shape
        time = self.embed_time(timesteps)
        tokens = torch.stack(
            [
                self.embed_z(z) + time,
                self.embed_state(states) + time,
                self.embed_action(actions) + time,
            ],
            dim=2,
        ).reshape(batch, 3 * steps, -1)
        padding = (1 - mask.repeat_interleave(3, dim=1)) * PADDING_BIAS
        bias = causal_bias(3 * steps) + padding[:, None, None, :]
        x = self.stack(self.embed_norm(tokens), bias).reshape(batch, steps, 3, -1)
        return torch.tanh(self.action_head(x[:, :, 1]))


def similarity(x, y):
    """Negative per-dimension mean squared difference along the last axis."""
    return -(x - y).pow(2).mean(dim=-1)


class SyntheticData:
    """Random episodes and a buffer of labelled segment pairs, from which each iteration
    draws its batches as clarify does (src/learn/encoder/batch.rs)."""

    def __init__(self):
        steps = EPISODES * MAX_EPISODE_LENGTH
        self.observations = torch.randn(steps, OBSERVATION_DIM) * 3 + 1
        self.actions = torch.rand(steps, ACTION_DIM) * 2 - 1
        self.mean = self.observations.mean(dim=0)
        self.std = self.observations.std(dim=0) + 1e-6
        # Per buffer entry: both segments' start rows and steps, and its answer.
        episodes = torch.randint(EPISODES, (BUFFER_PAIRS, 2))
        starts = torch.randint(
            MAX_EPISODE_LENGTH - SEGMENT_LENGTH + 1, (BUFFER_PAIRS, 2)
        )
        self.segment_rows = episodes * MAX_EPISODE_LENGTH + starts
        self.segment_starts = starts
        answers = torch.arange(BUFFER_PAIRS) % 3
        self.left_preferred = answers == 0
        self.ambiguous = answers == 2

    def reconstruction_batch(self):
        """Draw windows from a uniform episode and start, up to K steps long and
        left-padded to K: states normalised and zero when padded, actions −10 when
        padded."""
        episodes = torch.randint(EPISODES, (BATCH_SIZE, 1))
        starts = torch.randint(MAX_EPISODE_LENGTH, (BATCH_SIZE, 1))
        lengths = (MAX_EPISODE_LENGTH - starts).clamp(max=SEGMENT_LENGTH)
        offsets = torch.arange(SEGMENT_LENGTH) - (SEGMENT_LENGTH - lengths)
        mask = offsets >= 0
        timesteps = torch.where(mask, starts + offsets, 0)
        rows = episodes * MAX_EPISODE_LENGTH + timesteps
        states = (self.observations[rows] - self.mean) / self.std * mask[..., None]
        actions = torch.where(mask[..., None], self.actions[rows], PADDED_ACTION)
        return states, actions, timesteps, mask.float()

    def preference_batch(self):
        """Draw queries uniformly with replacement and return the reversed, normalised
        states [2·B, H, obs] (left 0, right 0, left 1, ...), their timesteps, the
        ambiguity flags and the rows of each clear query's preferred and dispreferred
        segment."""
        queries = torch.randint(BUFFER_PAIRS, (BATCH_SIZE,))
        rows = self.segment_rows[queries].reshape(-1, 1) + torch.arange(SEGMENT_LENGTH)
        timesteps = self.segment_starts[queries].reshape(-1, 1) + torch.arange(
            SEGMENT_LENGTH
        )
        states = (self.observations[rows] - self.mean) / self.std
        ambiguous = self.ambiguous[queries]
        clear = (~ambiguous).nonzero().squeeze(1)
        left_rows, right_rows = 2 * clear, 2 * clear + 1
        left_preferred = self.left_preferred[queries][clear]
        preferred = torch.where(left_preferred, left_rows, right_rows)
        dispreferred = torch.where(left_preferred, right_rows, left_rows)
        return states.flip(1), timesteps.flip(1), ambiguous, preferred, dispreferred


class EncoderIteration:
    """The two stacks, their AdamW optimizer and the data."""

    def __init__(self, preset, attention):
        sizes = PRESETS[preset]
        arguments = (sizes["hidden"], sizes["layers"], sizes["heads"], attention)
        self.aggregator = Aggregator(*arguments)
        self.decoder = Decoder(*arguments)
        self.parameters = [*self.aggregator.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )
        warmup = sizes["warmup_iterations"]
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda iteration: min((iteration + 1) / warmup, 1.0)
        )
        self.aggregator.train()
        self.decoder.train()
        self.data = SyntheticData()

    def reconstruction_step(self, states, actions, timesteps, mask):
        # Like clarify, the decoder gets Φ's output in reversed order.
        z = self.aggregator(states.flip(1), timesteps.flip(1))
        predicted = self.decoder(z, states, actions, timesteps, mask)
        squared = (predicted - actions).pow(2).sum(dim=2)
        loss = (squared * mask).sum() / (mask.sum() * ACTION_DIM)
        loss_value = loss.item()
        self.apply(loss)
        return loss_value

    def contrastive_step(self, states, timesteps):
        norm_loss = (
            self.aggregator(states.flip(1), timesteps.flip(1)).norm(dim=2) - 1
        ).pow(2)
        norm_loss = norm_loss.mean()

        pair_states, pair_timesteps, ambiguous, preferred, dispreferred = (
            self.data.preference_batch()
        )
        # The segment embedding is Φ's output at the last reversed position.
        tokens = self.aggregator(pair_states, pair_timesteps)[:, -1]
        probabilities = torch.sigmoid(similarity(tokens[0::2], tokens[1::2]))
        # An empty group contributes 0.
        zero = torch.zeros(())
        clear_mean = probabilities[~ambiguous].mean() if (~ambiguous).any() else zero
        ambiguous_mean = probabilities[ambiguous].mean() if ambiguous.any() else zero
        ambiguity_loss = clear_mean - ambiguous_mean

        count = len(preferred)
        own = torch.arange(count).repeat_interleave(QUADRILATERAL_PARTNERS)
        partner = torch.randint(count, (count * QUADRILATERAL_PARTNERS,))
        p_i, n_i = tokens[preferred[own]], tokens[dispreferred[own]]
        p_j, n_j = tokens[preferred[partner]], tokens[dispreferred[partner]]
        quadrilateral_loss = torch.sigmoid(
            similarity(p_i, n_j)
            + similarity(p_j, n_i)
            - similarity(p_i, p_j)
            - similarity(n_i, n_j)
        ).mean()

        # clarify reads each unweighted loss back for its training report.
        values = [norm_loss.item(), ambiguity_loss.item(), quadrilateral_loss.item()]
        loss = (
            NORM_WEIGHT * norm_loss
            + AMBIGUITY_WEIGHT * ambiguity_loss
            + QUADRILATERAL_WEIGHT * quadrilateral_loss
        )
        self.apply(loss)
        return values

    def apply(self, loss):
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters, GRADIENT_CLIP_NORM)
        self.optimizer.step()

    def run(self):
        states, actions, timesteps, mask = self.data.reconstruction_batch()
        self.reconstruction_step(states, actions, timesteps, mask)
        self.contrastive_step(states, timesteps)
        self.schedule.step()


def main():
    def add_arguments(parser):
        parser.add_argument(
            "--preset",
            choices=sorted(PRESETS),
            default="cpu",
            help="cpu: width 64, 2 layers, 2 heads (default); paper: 256, 4, 4",
        )
        parser.add_argument(
            "--attention",
            choices=["sdpa", "manual"],
            default="manual",
            help="manual: matmul, additive bias and softmax, as clarify computes "
            "attention (default); sdpa: torch's fused scaled_dot_product_attention",
        )

    arguments = parse_arguments(
        __doc__.splitlines()[0], warmup=2, measured=10, add_arguments=add_arguments
    )
    configure(arguments.threads, arguments.seed)
    iteration = EncoderIteration(arguments.preset, arguments.attention)
    seconds = measure(
        iteration.run, warmup=arguments.warmup, measured=arguments.measured
    )
    config = {
        "preset": arguments.preset,
        **PRESETS[arguments.preset],
        "attention": arguments.attention,
        "embedding_dim": EMBEDDING_DIM,
        "segment_length": SEGMENT_LENGTH,
        "batch_size": BATCH_SIZE,
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "dropout": DROPOUT,
    }
    report("encoder_iteration", "iteration", config, seconds, warmup=arguments.warmup)


if __name__ == "__main__":
    main()
