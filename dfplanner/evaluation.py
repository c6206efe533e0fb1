"""The evaluation loop: D4RL's maze2d protocol, run in lockstep batches of environments.

Every episode lasts the full D4RL length (300 / 600 / 800 steps, no termination) and is seeded from
(seed, episode index) alone, so the episodes (starts, targets) do not depend on the batch size.
Scores are D4RL-normalized with the single-task reference numbers, also in the multi-goal setting.

OGBench PointMaze (``pointmaze-{medium,large,giant}[-{navigate,stitch}]-v0``, see ``dfplanner.envs.ogbench``)
runs OGBench's protocol: its env (terminates at the goal, 1,000 steps), episode i on evaluation task
i mod 5 + 1 (or on the one ``task``), success = ``info["success"]``, and a per-task success rate.

The same loop runs the envs recovered from a Minari PointMaze dataset (``minari:ID``, see
``dfplanner.pointmaze``): their own episode length and goal (``desired_goal``, drawn at every reset),
an episode ends early if its env terminates, and returns are reported raw (no D4RL normalization).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from dfplanner.envs import ogbench
from dfplanner.envs.layouts import MAZES, MazeSpec, resolve_env_id
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


MINARI_PREFIX = "minari:"


@dataclass(frozen=True)
class EvalTask:
    """What `evaluate` runs: `steps`-step episodes in envs from `make_env`, which speak Maze2dEnv's
    interface (flat observations, in D4RL's frame when there is a `maze`, ``info["target"]``, ``info["success"]``)."""

    name: str
    maze: MazeSpec | None  # the oracle's maze, the checkpoint's env id and the plotted layout; None: not a D4RL maze
    make_env: Callable[[], gym.Env]
    steps: int
    multi_goal: bool
    d4rl_scores: bool  # D4RL-normalized scores apply (maze2d's own envs only)
    reset_options: Callable[[int], dict] | None = None  # episode index -> its reset options (OGBench: its task)
    oracle: Callable[[], Policy] | None = None  # the env family's own oracle policy, when it is not maze2d's


def eval_task(env: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
    """A maze2d name / id (D4RL's protocol), an OGBench PointMaze name (OGBench's protocol; `task`: one of
    its 5 tasks) or ``minari:ID`` (the envs its PointMaze dataset recovers)."""
    if ogbench.is_pointmaze(env):
        return _ogbench_task(env, multi_goal, task)
    if task is not None:
        raise DfplannerError(f"--task K picks one of OGBench's evaluation tasks; {env} has none")
    if env.startswith(MINARI_PREFIX):
        from dfplanner.pointmaze import recovered_envs

        if multi_goal:
            raise DfplannerError(f"{env}: --multi-goal is for maze2d; a PointMaze env draws its own goal at every reset")
        maze, make_env, steps = recovered_envs(env[len(MINARI_PREFIX) :])
        return EvalTask(env, maze, make_env, steps, multi_goal=True, d4rl_scores=False)
    maze = MAZES[resolve_env_id(env)]
    return EvalTask(maze.env_id, maze, lambda: Maze2dEnv(maze.name, multi_goal=multi_goal), maze.max_episode_steps,
                    multi_goal=multi_goal, d4rl_scores=True)


def _ogbench_task(env: str, multi_goal: bool, task: int | None) -> EvalTask:
    """OGBench's protocol: episode i runs task i mod 5 + 1 (or `task`), in OGBench's own env and length."""
    if multi_goal:
        raise DfplannerError(f"{env}: --multi-goal is for maze2d; OGBench evaluates its 5 fixed tasks (--task K for one)")
    env_id, tasks = ogbench.eval_env_id(env), ogbench.task_ids(task)
    return EvalTask(env, None, lambda: ogbench.make_eval_env(env_id), ogbench.episode_steps(env_id), multi_goal=True,
                    d4rl_scores=False, reset_options=lambda i: {"task_id": tasks[i % len(tasks)]},
                    oracle=lambda: ogbench.OraclePolicy(env_id))


def per_task_success(task_ids: list[int], success: np.ndarray) -> dict[str, dict[str, float]]:
    """Success rate and episode count of each task id."""
    ids = np.asarray(task_ids)
    return {str(k): {"episodes": int((ids == k).sum()), "success_rate": float(success[ids == k].mean())} for k in sorted(set(task_ids))}


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
    env: str | EvalTask,
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
    task = env if isinstance(env, EvalTask) else eval_task(env, multi_goal)
    if episodes <= 0:
        raise DfplannerError(f"episodes must be positive, got {episodes}")
    if batch_size <= 0:
        raise DfplannerError(f"batch size must be positive, got {batch_size}")
    if seed < 0:
        raise DfplannerError(f"seed must be non-negative, got {seed}")
    steps = task.steps
    options = task.reset_options or (lambda i: None)
    envs = [task.make_env() for _ in range(min(batch_size, episodes))]
    returns = np.zeros(episodes)
    first_reach = np.full(episodes, steps)
    success = np.zeros(episodes, dtype=bool)
    starts = np.empty((episodes, 2))
    targets = np.empty((episodes, 2))
    xy = np.empty((episodes, steps + 1, 2), dtype=np.float32) if keep_trajectories else None
    policy_time = 0.0
    wall_start = time.perf_counter()
    with tqdm(total=episodes * steps, unit="step", desc=f"{task.name} {policy.name}", disable=not progress) as bar:
        for begin in range(0, episodes, batch_size):
            index = np.arange(begin, min(begin + batch_size, episodes))
            batch = envs[: len(index)]
            resets = [env.reset(seed=episode_seed(seed, i), options=options(i)) for env, i in zip(batch, index)]
            observations = np.stack([obs for obs, _ in resets])
            targets[index] = [info["target"] for _, info in resets]
            running = np.ones(len(batch), dtype=bool)  # False once an env has terminated
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
                for j in np.flatnonzero(running):
                    observations[j], reward, terminated, _, info = batch[j].step(actions[j])
                    returns[index[j]] += reward
                    running[j] = not terminated
                    if info["success"] and not success[index[j]]:
                        success[index[j]], first_reach[index[j]] = True, t + 1
                if xy is not None:
                    xy[index, t + 1] = observations[:, :2]
                bar.update(len(batch))
    wall_time = time.perf_counter() - wall_start
    scores = np.array([task.maze.get_normalized_score(r) for r in returns]) if task.d4rl_scores else None
    return_mean, return_std, _ = _stats(returns)
    score_mean, score_std, score_sem = (None, None, None) if scores is None else _stats(scores)
    result: dict[str, Any] = {
        "env": task.name,
        "policy": policy.name,
        "episodes": episodes,
        "seed": seed,
        "multi_goal": task.multi_goal,
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
                "normalized_score": None if scores is None else float(scores[i]),
                "success": bool(success[i]),
                "first_reach": int(first_reach[i]),
                "start": starts[i].tolist(),
                "target": targets[i].tolist(),
                **(options(i) or {}),
            }
            for i in range(episodes)
        ],
    }
    if task.reset_options is not None:
        result["per_task"] = per_task_success([options(i)["task_id"] for i in range(episodes)], success)
    if xy is not None:
        result["trajectories"] = xy
    return result
