"""Time IQL gradient steps in PyTorch, the reference for examples/iql_step.rs.

The networks and the update follow clarify's IQL (src/learn/iql/). There are twin Q
networks (observation ‖ action) → 256 → 256 → 1, a value network observation → 256 →
256 → 1 and a Gaussian actor. The actor's mean is tanh(observation → 256 → 256 →
action), and its log standard deviation is one parameter per action feature, clamped to
[−20, 2]. ReLU sits between layers.

A step computes three losses: the value loss (expectile τ = 0.7 against min Q_target),
the Q loss (target r + γ·V(s'), γ = 0.99, terminals ignored) and the actor loss
(advantage weight exp(β·A), β = 3, clipped at 100). It backpropagates their sum once and
takes one Adam step (lr 3e-4) per network, the actor's on a cosine schedule. Then the
target Q networks move towards the online ones by Polyak averaging (rate 0.005).
Minibatches of 256 transitions are drawn with replacement from a buffer of 25,000 random
transitions with 39 observation and 4 action features (Meta-World).
"""

import copy
import math

import torch
from torch import nn

from common import configure, measure, parse_arguments, report

OBSERVATION_DIM = 39
ACTION_DIM = 4
HIDDEN = 256
BATCH_SIZE = 256
BUFFER_SIZE = 25_000
EXPECTILE = 0.7
TEMPERATURE = 3.0
DISCOUNT = 0.99
POLYAK = 0.005
LEARNING_RATE = 3e-4
MAX_ADVANTAGE_WEIGHT = 100.0
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)
# Gradient steps of clarify's `cpu` IQL preset, the length of the actor's cosine
# schedule.
TOTAL_STEPS = 50_000


def uniform(*shape):
    """Draw values uniformly from [−1, 1)."""
    return torch.rand(*shape) * 2 - 1


def mlp(input_dim, output_dim):
    return nn.Sequential(
        nn.Linear(input_dim, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, output_dim),
    )


class TwinQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.q1 = mlp(OBSERVATION_DIM + ACTION_DIM, 1)
        self.q2 = mlp(OBSERVATION_DIM + ACTION_DIM, 1)

    def forward(self, state_actions):
        return self.q1(state_actions).squeeze(1), self.q2(state_actions).squeeze(1)


class GaussianActor(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = mlp(OBSERVATION_DIM, ACTION_DIM)
        self.log_std = nn.Parameter(torch.zeros(ACTION_DIM))

    def log_prob(self, observations, actions):
        """Return log π(a|s) summed over action features, written out like clarify's
        instead of torch.distributions.Normal, whose argument checks add work."""
        mean = torch.tanh(self.mean(observations))
        log_std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        standardized = (actions - mean) / log_std.exp()
        log_density = -0.5 * standardized.pow(2) - log_std - HALF_LOG_TWO_PI
        return log_density.sum(dim=1)


class IqlStep:
    """The IQL networks, their optimizers and a buffer of random transitions."""

    def __init__(self):
        self.q = TwinQ()
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp(OBSERVATION_DIM, 1)
        self.actor = GaussianActor()
        self.q_optimizer = torch.optim.Adam(self.q.parameters(), lr=LEARNING_RATE)
        self.v_optimizer = torch.optim.Adam(self.v.parameters(), lr=LEARNING_RATE)
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=LEARNING_RATE
        )
        self.completed_steps = 0
        self.observations = uniform(BUFFER_SIZE, OBSERVATION_DIM)
        self.actions = uniform(BUFFER_SIZE, ACTION_DIM)
        self.rewards = uniform(BUFFER_SIZE)
        self.next_observations = uniform(BUFFER_SIZE, OBSERVATION_DIM)
        # 0 would drop the bootstrap term of a terminal, but CLARIFY ignores terminals.
        self.bootstrap = torch.ones(BUFFER_SIZE)

    def run(self):
        """Run one gradient step on a minibatch drawn with replacement.

        As in clarify, all three losses come from the networks before the step, so V's
        update does not feed the Q target of the same step. One backward pass of their
        sum gives each network's gradient, because their parameters are disjoint.
        """
        batch = torch.randint(BUFFER_SIZE, (BATCH_SIZE,))
        observations = self.observations[batch]
        actions = self.actions[batch]
        state_actions = torch.cat([observations, actions], dim=1)

        with torch.no_grad():
            target_q = torch.minimum(*self.q_target(state_actions))
            next_value = self.v(self.next_observations[batch]).squeeze(1)
            q_target = (
                self.rewards[batch] + self.bootstrap[batch] * DISCOUNT * next_value
            )

        # Expectile regression: weight τ above the target, 1 − τ below it.
        advantage = target_q - self.v(observations).squeeze(1)
        weight = torch.abs(EXPECTILE - (advantage.detach() < 0).float())
        value_loss = (weight * advantage.pow(2)).mean()

        q1, q2 = self.q(state_actions)
        q_loss = ((q1 - q_target).pow(2).mean() + (q2 - q_target).pow(2).mean()) / 2

        weights = torch.exp(TEMPERATURE * advantage.detach()).clamp(
            max=MAX_ADVANTAGE_WEIGHT
        )
        actor_loss = -(weights * self.actor.log_prob(observations, actions)).mean()

        # clarify reads the three losses back to check them and to report progress.
        losses = (q_loss.item(), value_loss.item(), actor_loss.item())
        if not all(math.isfinite(loss) for loss in losses):
            raise RuntimeError(
                f"non-finite loss at step {self.completed_steps}: {losses}"
            )

        progress = min(self.completed_steps, TOTAL_STEPS) / TOTAL_STEPS
        actor_learning_rate = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * progress))
        for group in self.actor_optimizer.param_groups:
            group["lr"] = actor_learning_rate
        for optimizer in (self.q_optimizer, self.v_optimizer, self.actor_optimizer):
            optimizer.zero_grad(set_to_none=True)
        (q_loss + value_loss + actor_loss).backward()
        for optimizer in (self.q_optimizer, self.v_optimizer, self.actor_optimizer):
            optimizer.step()
        with torch.no_grad():
            for target, source in zip(
                self.q_target.parameters(), self.q.parameters(), strict=True
            ):
                target.lerp_(source, POLYAK)
        self.completed_steps += 1


def main():
    def add_arguments(parser):
        parser.add_argument(
            "--steps-per-call",
            type=int,
            default=100,
            help="gradient steps per timed call (default 100)",
        )

    arguments = parse_arguments(
        __doc__.splitlines()[0], warmup=1, measured=7, add_arguments=add_arguments
    )
    configure(arguments.threads, arguments.seed)
    step = IqlStep()
    steps = arguments.steps_per_call

    def call():
        for _ in range(steps):
            step.run()

    seconds = measure(
        call, warmup=arguments.warmup, measured=arguments.measured, units_per_call=steps
    )
    config = {
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "hidden": HIDDEN,
        "batch_size": BATCH_SIZE,
        "buffer_size": BUFFER_SIZE,
        "steps_per_call": steps,
    }
    report("iql_step", "step", config, seconds, warmup=arguments.warmup * steps)


if __name__ == "__main__":
    main()
