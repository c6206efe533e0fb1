"""The one in-memory offline dataset type, and the validation every loader passes its arrays through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfplanner.errors import DfplannerError

ACTION_TOLERANCE = 1e-6  # float32 round-off allowed beyond [-1, 1]


@dataclass
class OfflineDataset:
    """Transitions in time order; episode e is rows episode_ends[e-1]:episode_ends[e]."""

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32, in [-1, 1]
    rewards: np.ndarray  # (N,) float32
    episode_ends: np.ndarray  # (E,) int64, sorted, one past each episode's last step; the last is N
    goals: np.ndarray | None = None  # (N, 2) float32 target of each step, when the source records it
    source: str = ""
    env_id: str = ""  # e.g. "maze2d-large-v1"; "" when the source does not say
    continuous: bool = True  # each episode starts where the previous one ended (see the module docstring)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)


def check_shape(array: np.ndarray, shape: tuple[int | None, ...], key: str, where: str) -> None:
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise DfplannerError(f"{where}: key {key!r} has shape {array.shape}, expected {wanted}")


def check_action_range(actions: np.ndarray, env_id: str, where: str) -> None:
    """Actions must lie in the action space of the env they were recorded in (unchecked when it is unknown)."""
    from dfplanner.envs import action_bounds

    bounds = action_bounds(env_id)
    if bounds is None:
        return
    low, high = bounds
    outside = (actions < low - ACTION_TOLERANCE) | (actions > high + ACTION_TOLERANCE)
    if outside.any():
        worst = float(np.abs(actions[outside]).max())
        raise DfplannerError(f"{where}: key 'actions' has values outside [{low.min():g}, {high.max():g}], "
                             f"the action space of {env_id} (max |a| = {worst:.6g})")


def validated(
    observations, actions, rewards, episode_ends, goals, where: str, env_id: str, continuous: bool = True
) -> OfflineDataset:
    """Shapes, lengths, finiteness and the action range, each failure naming the source and key."""
    observations, actions, rewards = (np.asarray(a) for a in (observations, actions, rewards))
    n = len(observations)
    if n == 0:
        raise DfplannerError(f"{where}: key 'observations' is empty")
    checks: dict[str, tuple[np.ndarray, tuple[int | None, ...]]] = {
        "observations": (observations, (n, None)),
        "actions": (actions, (n, None)),
        "rewards": (rewards, (n,)),
    }
    if goals is not None:
        checks["infos/goal"] = (np.asarray(goals), (n, 2))
    for key, (array, shape) in checks.items():
        if array.ndim == len(shape) and len(array) != n:
            raise DfplannerError(f"{where}: key {key!r} has {len(array)} rows but 'observations' has {n}")
        check_shape(array, shape, key, where)
        if not np.issubdtype(array.dtype, np.number):
            raise DfplannerError(f"{where}: key {key!r} has non-numeric dtype {array.dtype}")
        if not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array).reshape(n, -1).all(axis=1))[0])
            raise DfplannerError(f"{where}: key {key!r} has NaN or inf (first at row {bad})")
    check_action_range(actions, env_id, where)
    return OfflineDataset(
        observations=observations.astype(np.float32),
        actions=actions.astype(np.float32),
        rewards=rewards.astype(np.float32),
        episode_ends=np.asarray(episode_ends, dtype=np.int64),
        goals=None if goals is None else np.asarray(goals, dtype=np.float32),
        source=where,
        env_id=env_id,
        continuous=continuous,
    )
