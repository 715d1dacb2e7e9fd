"""Offline datasets in the D4RL field layout: loading, validation, episodes, segments.

The layout, defined in docs/DATASETS.md, stores N steps of per-step arrays with the
episodes one after another in step order. A `Dataset` has passed validation, so callers
rely on:

- N >= 1 and every per-step field has N rows, with the dtype the layout names;
- every float is finite;
- the episodes cover steps 0..N in order without gaps, each with at least one step;
- with `episode_ids`, every terminal or timeout flag lies on an episode's last step, and
  `timesteps`, when present, counts 0, 1, 2, ... within each episode;
- the simulator state fields are either all present, with matching shapes, or all
  absent.

Fields outside the layout are ignored.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clarify_sim.env import FRAME_DIM, SimState
from clarify_sim.errors import DatasetError

#: Fields every dataset has.
REQUIRED_FIELDS = (
    "observations",
    "actions",
    "next_observations",
    "rewards",
    "terminals",
    "timeouts",
)

#: Per-step fields a dataset may have; the generator always writes them.
OPTIONAL_FIELDS = ("success", "episode_ids", "timesteps")

#: Simulator state fields that let a stored step be re-rendered.
STATE_FIELDS = ("rand_vecs", "qpos", "qvel", "mocap_pos", "mocap_quat")

#: Expected dtype of every field of the layout.
FIELD_DTYPES: dict[str, np.dtype] = {
    "observations": np.dtype(np.float32),
    "actions": np.dtype(np.float32),
    "next_observations": np.dtype(np.float32),
    "rewards": np.dtype(np.float32),
    "terminals": np.dtype(np.bool_),
    "timeouts": np.dtype(np.bool_),
    "success": np.dtype(np.bool_),
    "episode_ids": np.dtype(np.int64),
    "timesteps": np.dtype(np.int64),
    "rand_vecs": np.dtype(np.float64),
    "qpos": np.dtype(np.float64),
    "qvel": np.dtype(np.float64),
    "mocap_pos": np.dtype(np.float64),
    "mocap_quat": np.dtype(np.float64),
}

#: Number of dimensions of every field of the layout.
FIELD_NDIMS = {
    "observations": 2,
    "actions": 2,
    "next_observations": 2,
    "rewards": 1,
    "terminals": 1,
    "timeouts": 1,
    "success": 1,
    "episode_ids": 1,
    "timesteps": 1,
    "rand_vecs": 2,
    "qpos": 2,
    "qvel": 2,
    "mocap_pos": 3,
    "mocap_quat": 3,
}

#: Default segment length H in steps.
DEFAULT_SEGMENT_LENGTH = 50


@dataclass(frozen=True)
class Dataset:
    """A validated dataset and its split into episodes.

    `episode_bounds` has E + 1 entries: episode e covers the global steps
    `episode_bounds[e]` to `episode_bounds[e + 1] - 1`.
    """

    #: Origin of the arrays (a file path), named in messages.
    source: str
    #: The layout's fields that the file contains, keyed by field name.
    arrays: Mapping[str, np.ndarray]
    #: Episode boundaries in global steps, int64 [E + 1].
    episode_bounds: np.ndarray

    @property
    def steps(self) -> int:
        """Number of steps N."""
        return int(self.arrays["rewards"].shape[0])

    @property
    def episode_count(self) -> int:
        """Number of episodes E."""
        return int(self.episode_bounds.size - 1)

    @property
    def observation_dim(self) -> int:
        """Size of one observation."""
        return int(self.arrays["observations"].shape[1])

    @property
    def action_dim(self) -> int:
        """Size of one action."""
        return int(self.arrays["actions"].shape[1])

    @property
    def rewards(self) -> np.ndarray:
        """Ground-truth step rewards, float32 [N]."""
        return self.arrays["rewards"]

    @property
    def success(self) -> np.ndarray | None:
        """Success flags, bool [N], or None when the file has none."""
        return self.arrays.get("success")

    @property
    def has_state(self) -> bool:
        """Whether the file contains the simulator state fields."""
        return "qpos" in self.arrays

    def episode_lengths(self) -> np.ndarray:
        """Return the number of steps of each episode, int64 [E]."""
        return np.diff(self.episode_bounds)

    def episode_steps(self, episode: int) -> range:
        """Return the global steps of `episode`."""
        self._check_episode(episode)
        return range(
            int(self.episode_bounds[episode]), int(self.episode_bounds[episode + 1])
        )

    def episode_of_step(self, step: int) -> int:
        """Return the index of the episode that contains global step `step`."""
        if not 0 <= step < self.steps:
            raise DatasetError(
                f"{self.source}: step {step} is out of range, the dataset has "
                f"{self.steps} steps"
            )
        return int(np.searchsorted(self.episode_bounds, step, side="right") - 1)

    def sim_state(self, step: int) -> SimState:
        """Return the simulator state before the action of global step `step`.

        Raises `DatasetError` when the file has no simulator state fields.
        """
        if not self.has_state:
            raise DatasetError(
                f"{self.source} has no simulator state fields "
                f"({', '.join(STATE_FIELDS)}): regenerate it with "
                "`python -m clarify_sim generate`"
            )
        episode = self.episode_of_step(step)
        arrays = self.arrays
        previous_frame = None
        if self.observation_dim >= 2 * FRAME_DIM:
            frame = arrays["observations"][step, FRAME_DIM : 2 * FRAME_DIM]
            previous_frame = frame.astype(np.float64)
        return SimState(
            rand_vec=arrays["rand_vecs"][episode].copy(),
            qpos=arrays["qpos"][step].copy(),
            qvel=arrays["qvel"][step].copy(),
            mocap_pos=arrays["mocap_pos"][step].copy(),
            mocap_quat=arrays["mocap_quat"][step].copy(),
            previous_frame=previous_frame,
            elapsed_steps=step - int(self.episode_bounds[episode]),
        )

    def _check_episode(self, episode: int) -> None:
        if not 0 <= episode < self.episode_count:
            raise DatasetError(
                f"{self.source}: episode {episode} is out of range, the dataset has "
                f"{self.episode_count} episodes (0 to {self.episode_count - 1})"
            )


@dataclass(frozen=True)
class Segments:
    """The segments of a dataset: windows of H consecutive steps within one episode.

    Segment k covers the global steps `starts[k]` to `starts[k] + length - 1`. Segments
    are numbered episode by episode and, within an episode, by start.
    """

    #: Global step of each segment's first step, int64 [S].
    starts: np.ndarray
    #: Segment length H in steps.
    length: int
    #: Episodes shorter than H, which give no segment.
    short_episodes: int

    def __len__(self) -> int:
        return int(self.starts.size)


def enumerate_segments(
    episode_bounds: np.ndarray, segment_length: int = DEFAULT_SEGMENT_LENGTH
) -> Segments:
    """Enumerate every segment of `segment_length` steps in file order.

    An episode of L >= H steps gives the starts 0..=L-H within it. A shorter episode
    gives none and is counted in `short_episodes`.
    """
    if segment_length < 1:
        raise DatasetError(
            f"invalid segment length {segment_length}: use 1 or more steps"
        )
    starts = []
    short_episodes = 0
    for first, end in itertools.pairwise(episode_bounds):
        last_start = int(end) - segment_length
        if last_start < first:
            short_episodes += 1
            continue
        starts.append(np.arange(int(first), last_start + 1, dtype=np.int64))
    all_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    return Segments(all_starts, segment_length, short_episodes)


def load_dataset(path: str | Path) -> Dataset:
    """Load and validate a dataset `.npz` file.

    Raises `DatasetError` naming the file and, where one is at fault, the field, what
    it contains and what was expected.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {source}: check the path")
    if path.is_file() and not zipfile.is_zipfile(path):
        # np.load would try other formats and, for a text file, suggest unpickling it.
        raise DatasetError(
            f"{source} is not an NPZ archive (not a zip file): expected a file "
            "written by numpy.savez_compressed"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"dataset not found: {source}: check the path") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(
            f"{source} is not a valid NPZ archive (expected a file written by "
            f"numpy.savez_compressed): {error}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"{source} contains a single array, expected an NPZ archive of named "
            "fields written by numpy.savez_compressed"
        )

    arrays = {}
    with archive:
        for field in archive.files:
            if field not in FIELD_DTYPES:
                continue
            try:
                arrays[field] = archive[field]
            except (OSError, ValueError, zipfile.BadZipFile) as error:
                raise DatasetError(
                    f"{source}: failed to read field {field}: {error}"
                ) from None
    return validate_arrays(arrays, source)


def validate_arrays(arrays: Mapping[str, np.ndarray], source: str) -> Dataset:
    """Validate in-memory dataset fields and split them into episodes.

    `source` names the arrays' origin in error messages. Fields outside the layout are
    ignored.
    """
    fields = {
        name: _to_native_byte_order(np.asarray(arrays[name]))
        for name in FIELD_DTYPES
        if name in arrays
    }
    for name in REQUIRED_FIELDS:
        if name not in fields:
            present = ", ".join(sorted(arrays)) or "none"
            raise DatasetError(
                f"{source} has no field {name} (fields present: {present}); "
                f"required fields: {', '.join(REQUIRED_FIELDS)}"
            )
    for name, array in fields.items():
        _check_dtype_and_ndim(source, name, array)

    steps = fields["observations"].shape[0]
    if steps == 0:
        raise DatasetError(f"{source} has no steps: observations has shape (0, ...)")
    _check_step_counts(source, fields, steps)
    _check_finite(source, fields)

    if "episode_ids" in fields:
        bounds = _split_by_episode_ids(source, fields)
    else:
        bounds = _split_by_flags(fields["terminals"], fields["timeouts"])
    if "timesteps" in fields:
        _check_timesteps(source, fields["timesteps"], bounds)
    _check_state_fields(source, fields, bounds.size - 1)
    return Dataset(source, fields, bounds)


def _to_native_byte_order(array: np.ndarray) -> np.ndarray:
    """Return `array` in this machine's byte order; NPZ files may store either order."""
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _check_dtype_and_ndim(source: str, name: str, array: np.ndarray) -> None:
    expected_dtype = FIELD_DTYPES[name]
    if array.dtype != expected_dtype:
        raise DatasetError(
            f"{source}: {name} has dtype {array.dtype}, expected {expected_dtype}"
        )
    expected_ndim = FIELD_NDIMS[name]
    if array.ndim != expected_ndim:
        raise DatasetError(
            f"{source}: {name} has shape {array.shape}, expected {expected_ndim} "
            f"dimensions ({_shape_description(name)})"
        )


def _shape_description(name: str) -> str:
    descriptions = {
        "observations": "[N, obs_dim]",
        "actions": "[N, act_dim]",
        "next_observations": "[N, obs_dim]",
        "rand_vecs": "[E, k]",
        "qpos": "[N, nq]",
        "qvel": "[N, nv]",
        "mocap_pos": "[N, nmocap, 3]",
        "mocap_quat": "[N, nmocap, 4]",
    }
    return descriptions.get(name, "[N]")


def _check_step_counts(source: str, fields: Mapping[str, np.ndarray], steps: int):
    for name, array in fields.items():
        if name == "rand_vecs":
            continue
        if array.shape[0] != steps:
            raise DatasetError(
                f"{source}: {name} has shape {array.shape}, expected {steps} rows "
                f"{_shape_description(name)}, one per step as in observations"
            )
    observation_shape = fields["observations"].shape
    if fields["next_observations"].shape != observation_shape:
        raise DatasetError(
            f"{source}: next_observations has shape "
            f"{fields['next_observations'].shape}, expected {observation_shape} "
            "(the shape of observations)"
        )


def _check_finite(source: str, fields: Mapping[str, np.ndarray]) -> None:
    for name, array in fields.items():
        if array.dtype.kind != "f":
            continue
        bad = ~np.isfinite(array)
        if not bad.any():
            continue
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = "episode" if name == "rand_vecs" else "step"
        location = f"{where} {index[0]}"
        if len(index) > 1:
            location += ", column " + ", ".join(str(i) for i in index[1:])
        raise DatasetError(
            f"{source}: {name} contains {array[index]} at {location}, expected "
            "finite values"
        )


def _split_by_flags(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Return episode bounds: an episode ends at every flagged step and at the end."""
    steps = terminals.size
    ends = np.flatnonzero(terminals | timeouts) + 1
    if ends.size == 0 or ends[-1] != steps:
        ends = np.append(ends, steps)
    return np.concatenate(([0], ends)).astype(np.int64)


def _split_by_episode_ids(source: str, fields: Mapping[str, np.ndarray]) -> np.ndarray:
    ids = fields["episode_ids"]
    if ids[0] != 0:
        raise DatasetError(
            f"{source}: episode_ids starts at {ids[0]}, expected 0 (episode ids are "
            "0-based)"
        )
    jumps = np.diff(ids)
    bad = np.flatnonzero((jumps != 0) & (jumps != 1))
    if bad.size:
        step = int(bad[0]) + 1
        raise DatasetError(
            f"{source}: episode_ids goes from {ids[step - 1]} to {ids[step]} at step "
            f"{step}, expected {ids[step - 1]} or {ids[step - 1] + 1} (ids are "
            "non-decreasing and contiguous)"
        )
    ends = np.append(np.flatnonzero(jumps) + 1, ids.size)
    bounds = np.concatenate(([0], ends)).astype(np.int64)

    last_steps = np.zeros(ids.size, dtype=bool)
    last_steps[bounds[1:] - 1] = True
    for flag in ("terminals", "timeouts"):
        inside = np.flatnonzero(fields[flag] & ~last_steps)
        if inside.size:
            step = int(inside[0])
            raise DatasetError(
                f"{source}: {flag} is true at step {step} inside episode {ids[step]}, "
                "expected flags only on an episode's last step"
            )
    return bounds


def _check_timesteps(source: str, timesteps: np.ndarray, bounds: np.ndarray) -> None:
    starts = np.repeat(bounds[:-1], np.diff(bounds))
    expected = np.arange(timesteps.size, dtype=np.int64) - starts
    bad = np.flatnonzero(timesteps != expected)
    if bad.size:
        step = int(bad[0])
        raise DatasetError(
            f"{source}: timesteps is {timesteps[step]} at step {step}, expected "
            f"{expected[step]} (steps count 0, 1, 2, ... within each episode)"
        )


def _check_state_fields(
    source: str, fields: Mapping[str, np.ndarray], episodes: int
) -> None:
    present = [name for name in STATE_FIELDS if name in fields]
    if not present:
        return
    missing = [name for name in STATE_FIELDS if name not in fields]
    if missing:
        raise DatasetError(
            f"{source} has simulator state fields {', '.join(present)} but not "
            f"{', '.join(missing)}: a dataset has all of {', '.join(STATE_FIELDS)} "
            "or none"
        )

    rand_vecs = fields["rand_vecs"]
    if rand_vecs.shape[0] != episodes:
        raise DatasetError(
            f"{source}: rand_vecs has shape {rand_vecs.shape}, expected {episodes} "
            "rows, one per episode"
        )
    mocap_pos, mocap_quat = fields["mocap_pos"], fields["mocap_quat"]
    if mocap_pos.shape[2] != 3:
        raise DatasetError(
            f"{source}: mocap_pos has shape {mocap_pos.shape}, expected [N, nmocap, 3]"
        )
    if mocap_quat.shape[:2] != mocap_pos.shape[:2] or mocap_quat.shape[2] != 4:
        raise DatasetError(
            f"{source}: mocap_quat has shape {mocap_quat.shape}, expected "
            f"{(*mocap_pos.shape[:2], 4)} (the rows and bodies of mocap_pos, 4 "
            "quaternion entries)"
        )
