"""The evaluation loop: D4RL's maze2d protocol, run in lockstep batches of environments.

Every episode lasts the full D4RL length (300 / 600 / 800 steps, no termination) and is seeded from
(seed, episode index) alone, so the episodes (starts, targets) do not depend on the batch size.
Scores are D4RL-normalized with the single-task reference numbers, also in the multi-goal setting.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.envs.oracle import WaypointExpert
from dfplanner.errors import DfplannerError

ACTION_DIM = 2


class Policy(Protocol):
    """A batched policy: one row per environment of the batch."""

    name: str

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        """Start of a batch of episodes: observations (B, obs_dim) float32, targets (B, 2)."""

    def act(self, observations: np.ndarray) -> np.ndarray:
        """(B, obs_dim) float32 observations -> (B, act_dim) actions (the env clips them to [-1, 1])."""


class OraclePolicy:
    """The scripted expert without noise: shortest path over cells, reaches the target and stays."""

    name = "oracle"

    def __init__(self, env_id: str):
        self.expert = WaypointExpert(MAZES[resolve_env_id(env_id)])

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.expert.set_targets(targets)

    def act(self, observations: np.ndarray) -> np.ndarray:
        state = observations.astype(np.float64)
        return self.expert.act(state[:, :2], state[:, 2:])


class RandomPolicy:
    """Uniform actions in [-1, 1]: D4RL's reference minimum. Its draws, unlike the episodes, follow batching."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        pass

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(len(observations), ACTION_DIM))


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode `episode` of an evaluation seeded `seed`."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _check_actions(actions: np.ndarray, name: str, step: int, episodes: np.ndarray) -> None:
    """Never let a malformed or NaN/inf action reach the simulator."""
    if actions.shape != (len(episodes), ACTION_DIM):
        raise DfplannerError(
            f"policy {name} returned actions of shape {actions.shape} at step {step}, expected {(len(episodes), ACTION_DIM)}"
        )
    finite = np.isfinite(actions).all(axis=1)
    if not finite.all():
        raise DfplannerError(f"policy {name} returned NaN/inf actions at step {step} of episode {episodes[~finite][0]}")


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard deviation and standard error of the mean."""
    std = float(values.std())
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), std, sem


def evaluate(
    env_id: str,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    multi_goal: bool = False,
    batch_size: int = 50,
    progress: bool = True,
    keep_trajectories: bool = False,
) -> dict[str, Any]:
    """Run `episodes` episodes of `policy` and summarize them in a JSON-able dict.

    With ``keep_trajectories`` the dict also holds ``trajectories``: a float32 numpy array
    (episodes, steps + 1, 2) of the executed xy positions (the one key that is not JSON-able).
    ``decisions_per_second`` counts one decision per env step per episode, timed inside the policy only.
    """
    env_id = resolve_env_id(env_id)
    maze = MAZES[env_id]
    if episodes <= 0:
        raise DfplannerError(f"episodes must be positive, got {episodes}")
    if batch_size <= 0:
        raise DfplannerError(f"batch size must be positive, got {batch_size}")
    if seed < 0:
        raise DfplannerError(f"seed must be non-negative, got {seed}")
    steps = maze.max_episode_steps
    envs = [Maze2dEnv(maze.name, multi_goal=multi_goal) for _ in range(min(batch_size, episodes))]
    returns = np.zeros(episodes)
    first_reach = np.full(episodes, steps)
    starts = np.empty((episodes, 2))
    targets = np.empty((episodes, 2))
    xy = np.empty((episodes, steps + 1, 2), dtype=np.float32) if keep_trajectories else None
    policy_time = 0.0
    wall_start = time.perf_counter()
    with tqdm(total=episodes * steps, unit="step", desc=f"{env_id} {policy.name}", disable=not progress) as bar:
        for begin in range(0, episodes, batch_size):
            index = np.arange(begin, min(begin + batch_size, episodes))
            batch = envs[: len(index)]
            observations = np.stack([env.reset(seed=episode_seed(seed, i))[0] for env, i in zip(batch, index)])
            targets[index] = [env.target for env in batch]
            starts[index] = observations[:, :2]
            if xy is not None:
                xy[index, 0] = observations[:, :2]
            tick = time.perf_counter()
            policy.reset(observations.copy(), targets[index].copy())
            policy_time += time.perf_counter() - tick
            for t in range(steps):
                tick = time.perf_counter()
                actions = np.asarray(policy.act(observations.copy()), dtype=np.float64)
                policy_time += time.perf_counter() - tick
                _check_actions(actions, policy.name, t, index)
                for j, env in enumerate(batch):
                    observations[j], reward, _, _, _ = env.step(actions[j])
                    returns[index[j]] += reward
                    if reward and first_reach[index[j]] == steps:
                        first_reach[index[j]] = t + 1
                if xy is not None:
                    xy[index, t + 1] = observations[:, :2]
                bar.update(len(batch))
    wall_time = time.perf_counter() - wall_start
    scores = np.array([maze.get_normalized_score(r) for r in returns])
    success = returns > 0
    return_mean, return_std, _ = _stats(returns)
    score_mean, score_std, score_sem = _stats(scores)
    result: dict[str, Any] = {
        "env": env_id,
        "policy": policy.name,
        "episodes": episodes,
        "seed": seed,
        "multi_goal": multi_goal,
        "batch_size": batch_size,
        "max_episode_steps": steps,
        "return_mean": return_mean,
        "return_std": return_std,
        "normalized_score_mean": score_mean,
        "normalized_score_std": score_std,
        "normalized_score_sem": score_sem,
        "success_rate": float(success.mean()),
        "first_reach_mean": float(first_reach.mean()),
        "decisions_per_second": episodes * steps / max(policy_time, np.finfo(float).tiny),
        "policy_time_s": policy_time,
        "wall_time_s": wall_time,
        "per_episode": [
            {
                "return": float(returns[i]),
                "normalized_score": float(scores[i]),
                "success": bool(success[i]),
                "first_reach": int(first_reach[i]),
                "start": starts[i].tolist(),
                "target": targets[i].tolist(),
            }
            for i in range(episodes)
        ],
    }
    if xy is not None:
        result["trajectories"] = xy
    return result
