"""Time one reward-model training epoch in PyTorch, the reference for
examples/reward_epoch_time.rs.

The workload matches clarify's reward model (src/learn/reward.rs) with its default
configuration. It is an ensemble of 3 MLPs (observation ‖ action) → 256 → 256 → 256 → 1
with LeakyReLU (slope 0.01) and tanh on the output. Training sums the members'
Bradley-Terry losses and takes one Adam step (lr 3e-4, eps 1e-8) over all members. An
epoch visits 1,000 clear pairs of 50-step segments once per member, each member in its
own random order, in minibatches of 128 pairs. Observations have 39 features and actions
4 (Meta-World). Inputs are uniform in [-1, 1), because the cost of an epoch does not
depend on them.
"""

import torch
from torch import nn
from torch.nn import functional

from common import configure, measure, parse_arguments, report

PAIRS = 1000
STEPS = 50
OBSERVATION_DIM = 39
ACTION_DIM = 4
MEMBERS = 3
HIDDEN_SIZES = (256, 256, 256)
LEAKY_RELU_SLOPE = 0.01
LEARNING_RATE = 3e-4
ADAM_EPSILON = 1e-8
BATCH_SIZE = 128


def build_member(input_dim):
    """Build one member r̂(s, a).

    nn.Linear's default initialisation, U(−1/√fan_in, 1/√fan_in), is also clarify's.
    """
    layers = []
    width = input_dim
    for hidden in HIDDEN_SIZES:
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(LEAKY_RELU_SLOPE)]
        width = hidden
    layers += [nn.Linear(width, 1), nn.Tanh()]
    return nn.Sequential(*layers)


class RewardEpoch:
    """The ensemble, its optimizer and the training pairs."""

    def __init__(self):
        input_dim = OBSERVATION_DIM + ACTION_DIM
        self.members = nn.ModuleList(build_member(input_dim) for _ in range(MEMBERS))
        self.optimizer = torch.optim.Adam(
            self.members.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON
        )
        observations = torch.rand(PAIRS, 2, STEPS, OBSERVATION_DIM) * 2 - 1
        actions = torch.rand(PAIRS, 2, STEPS, ACTION_DIM) * 2 - 1
        # [pairs, 2, T, obs + act], the layout clarify builds once per training call.
        self.inputs = torch.cat([observations, actions], dim=3)
        # Answers alternate left, right as in the Rust example.
        self.left_preferred = torch.arange(PAIRS) % 2 == 0
        self.targets = torch.stack(
            [self.left_preferred.float(), (~self.left_preferred).float()], dim=1
        )

    def run(self):
        """Run one epoch and return the mean summed loss and the training accuracy."""
        orders = [torch.randperm(PAIRS) for _ in range(MEMBERS)]
        correct = [0] * MEMBERS
        loss_total = 0.0
        batches = 0
        for start in range(0, PAIRS, BATCH_SIZE):
            end = min(start + BATCH_SIZE, PAIRS)
            batch_loss = None
            for member_index, member in enumerate(self.members):
                batch = orders[member_index][start:end]
                rewards = member(self.inputs[batch])
                logits = rewards.sum(dim=2).reshape(len(batch), 2)
                # clarify reads the logits back to count correct pairs once per member
                # and batch.
                predicted_left = logits[:, 0] > logits[:, 1]
                correct[member_index] += int(
                    (predicted_left == self.left_preferred[batch]).sum().item()
                )
                loss = functional.cross_entropy(logits, self.targets[batch])
                batch_loss = loss if batch_loss is None else batch_loss + loss
            loss_total += batch_loss.item()
            batches += 1
            self.optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            self.optimizer.step()
        accuracy = sum(count / PAIRS for count in correct) / MEMBERS
        return loss_total / batches, accuracy


def main():
    arguments = parse_arguments(__doc__.splitlines()[0], warmup=1, measured=5)
    configure(arguments.threads, arguments.seed)
    epoch = RewardEpoch()
    seconds = measure(epoch.run, warmup=arguments.warmup, measured=arguments.measured)
    config = {
        "pairs": PAIRS,
        "steps": STEPS,
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "members": MEMBERS,
        "hidden_sizes": list(HIDDEN_SIZES),
        "batch_size": BATCH_SIZE,
    }
    report("reward_epoch", "epoch", config, seconds, warmup=arguments.warmup)


if __name__ == "__main__":
    main()
