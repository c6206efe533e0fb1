"""The evaluation loop: D4RL's maze2d protocol, run in lockstep batches of environments.

Every episode lasts the full D4RL length (300 / 600 / 800 steps, no termination) and is seeded from
(seed, episode index) alone, so the episodes (starts, targets) do not depend on the batch size.
Scores are D4RL-normalized with the single-task reference numbers, also in the multi-goal setting.

OGBench PointMaze (``pointmaze-{medium,large,giant}[-{navigate,stitch}]-v0``, see ``dfplanner.envs.ogbench``)
runs OGBench's protocol: its env (terminates at the goal, 1,000 steps), episode i on evaluation task
i mod 5 + 1 (or on the one ``task``), success = ``info["success"]``, and a per-task success rate.

Any other registered gymnasium env (e.g. ``Pendulum-v1``, see ``dfplanner.envs.registered``) runs its own
episodes (its ``max_episode_steps``, ended early by termination or truncation); it has no goal, so
there is no success rate, only returns.

The same loop runs the envs recovered from a Minari PointMaze dataset (``minari:ID``, see
``dfplanner.envs.pointmaze``): their own episode length and goal (``desired_goal``, drawn at every reset),
an episode ends early if its env terminates, and returns are reported raw (no D4RL normalization).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from dfplanner.envs import ogbench, registered, resolve_env
from dfplanner.envs.layouts import MAZES, MazeSpec, resolve_env_id
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.envs.oracle import WaypointExpert
from dfplanner.errors import DfplannerError


class Policy(Protocol):
    """A batched policy: one row per environment of the batch."""

    name: str

    def reset(self, observations: np.ndarray, targets: np.ndarray | None) -> None:
        """Start of a batch of episodes: observations (B, obs_dim) float32, targets (B, 2) (None: the env has no goal)."""

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
    """Uniform actions in the action space: D4RL's reference minimum. Its draws, unlike the episodes, follow batching."""

    name = "random"

    def __init__(self, action_space: gym.spaces.Box, seed: int = 0):
        self.action_space, self.rng = action_space, np.random.default_rng(seed)

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        pass

    def act(self, observations: np.ndarray) -> np.ndarray:
        space = self.action_space
        return self.rng.uniform(space.low, space.high, size=(len(observations), *space.shape))


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
    has_goal: bool = True  # False: an env without goal or success (returns only)

    @cached_property
    def spaces(self) -> tuple[gym.spaces.Box, gym.spaces.Box]:
        """The envs' observation and action spaces."""
        env = self.make_env()
        env.close()
        return env.observation_space, env.action_space

    @property
    def obs_dim(self) -> int:
        return self.spaces[0].shape[0]


def eval_task(env: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
    """A maze2d name / id (D4RL's protocol), an OGBench PointMaze name (OGBench's protocol; `task`: one of
    its 5 tasks), ``minari:ID`` (the envs its PointMaze dataset recovers) or a registered gymnasium id."""
    if ogbench.is_pointmaze(env):
        return _ogbench_task(env, multi_goal, task)
    if task is not None:
        raise DfplannerError(f"--task K picks one of OGBench's evaluation tasks; {env} has none")
    if env.startswith(MINARI_PREFIX):
        from dfplanner.data.datasets import open_minari
        from dfplanner.envs.pointmaze import recovered_envs

        if multi_goal:
            raise DfplannerError(f"{env}: --multi-goal is for maze2d; a PointMaze env draws its own goal at every reset")
        maze, make_env, steps = recovered_envs(open_minari(env[len(MINARI_PREFIX) :]), env)
        return EvalTask(env, maze, make_env, steps, multi_goal=True, d4rl_scores=False)
    env_id = resolve_env(env)
    if env_id not in MAZES:
        return _registered_task(env_id, multi_goal)
    maze = MAZES[env_id]
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


def _registered_task(env_id: str, multi_goal: bool) -> EvalTask:
    """A registered gymnasium env as it is: its own episode length, no goal."""
    if multi_goal:
        raise DfplannerError(f"{env_id}: --multi-goal is for maze2d; {env_id} has no goal")
    registered.spaces(env_id)  # flat boxes, or a one-line error
    env = registered.make(env_id)
    steps = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    if steps is None:
        raise DfplannerError(f"{env_id} has no max_episode_steps: register it with an episode length to evaluate it")
    return EvalTask(env_id, None, lambda: registered.make(env_id), steps, multi_goal=False, d4rl_scores=False, has_goal=False)


def per_task_success(task_ids: list[int], success: np.ndarray) -> dict[str, dict[str, float]]:
    """Success rate and episode count of each task id."""
    ids = np.asarray(task_ids)
    return {str(k): {"episodes": int((ids == k).sum()), "success_rate": float(success[ids == k].mean())} for k in sorted(set(task_ids))}


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode `episode` of an evaluation seeded `seed`."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _check_actions(actions: np.ndarray, shape: tuple[int, ...], name: str, step: int, episodes: np.ndarray) -> None:
    """Never let a malformed or NaN/inf action reach the simulator."""
    if actions.shape != (len(episodes), *shape):
        raise DfplannerError(
            f"policy {name} returned actions of shape {actions.shape} at step {step}, expected {(len(episodes), *shape)}"
        )
    finite = np.isfinite(actions).all(axis=1)
    if not finite.all():
        raise DfplannerError(f"policy {name} returned NaN/inf actions at step {step} of episode {episodes[~finite][0]}")


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard deviation and standard error of the mean."""
    std = float(values.std())
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), std, sem


def _options(task: EvalTask, episode: int) -> dict | None:
    """The reset options of an episode (OGBench: its evaluation task)."""
    return task.reset_options(episode) if task.reset_options is not None else None


class _Tally:
    """Per-episode outcomes of a run, filled batch by batch."""

    def __init__(self, episodes: int, steps: int, keep_trajectories: bool):
        self.returns = np.zeros(episodes)
        self.first_reach = np.full(episodes, steps)
        self.success = np.zeros(episodes, dtype=bool)
        self.starts = np.empty((episodes, 2))
        self.targets = np.empty((episodes, 2))
        self.xy = np.empty((episodes, steps + 1, 2), dtype=np.float32) if keep_trajectories else None


def _run_batch(task: EvalTask, policy: Policy, envs: list[gym.Env], index: np.ndarray, seed: int, tally: _Tally, bar) -> float:
    """Run the episodes `index` in lockstep, one env each; returns the time spent inside the policy."""
    resets = [env.reset(seed=episode_seed(seed, i), options=_options(task, i)) for env, i in zip(envs, index)]
    observations = np.stack([obs for obs, _ in resets])
    if task.has_goal:
        tally.targets[index] = [info["target"] for _, info in resets]
        tally.starts[index] = observations[:, :2]
    if tally.xy is not None:
        tally.xy[index, 0] = observations[:, :2]
    running = np.ones(len(envs), dtype=bool)  # False once an env has terminated
    tick = time.perf_counter()
    policy.reset(observations.copy(), tally.targets[index].copy() if task.has_goal else None)
    policy_time = time.perf_counter() - tick
    for t in range(task.steps):
        tick = time.perf_counter()
        actions = np.asarray(policy.act(observations.copy()), dtype=np.float64)
        policy_time += time.perf_counter() - tick
        _check_actions(actions, task.spaces[1].shape, policy.name, t, index)
        for j in np.flatnonzero(running):
            observations[j], reward, terminated, truncated, info = envs[j].step(actions[j])
            tally.returns[index[j]] += reward
            running[j] = not (terminated or truncated)
            if info.get("success", False) and not tally.success[index[j]]:
                tally.success[index[j]], tally.first_reach[index[j]] = True, t + 1
        if tally.xy is not None:
            tally.xy[index, t + 1] = observations[:, :2]
        bar.update(len(envs))
    return policy_time


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
    for name, value, low in (("episodes", episodes, 1), ("batch size", batch_size, 1), ("seed", seed, 0)):
        if value < low:
            raise DfplannerError(f"{name} must be >= {low}, got {value}")
    tally = _Tally(episodes, task.steps, keep_trajectories)
    envs = [task.make_env() for _ in range(min(batch_size, episodes))]
    policy_time, wall_start = 0.0, time.perf_counter()
    with tqdm(total=episodes * task.steps, unit="step", desc=f"{task.name} {policy.name}", disable=not progress) as bar:
        for begin in range(0, episodes, batch_size):
            index = np.arange(begin, min(begin + batch_size, episodes))
            policy_time += _run_batch(task, policy, envs[: len(index)], index, seed, tally, bar)
    wall_time = time.perf_counter() - wall_start
    for env in envs:
        env.close()  # a video recorder writes its last episode here
    result = _summary(task, policy, tally, seed, batch_size, policy_time, wall_time)
    if tally.xy is not None:
        result["trajectories"] = tally.xy
    return result


def _summary(task: EvalTask, policy: Policy, tally: _Tally, seed: int, batch_size: int, policy_time: float, wall_time: float) -> dict[str, Any]:
    episodes = len(tally.returns)
    scores = np.array([task.maze.get_normalized_score(r) for r in tally.returns]) if task.d4rl_scores else None
    return_mean, return_std, _ = _stats(tally.returns)
    score_mean, score_std, score_sem = (None, None, None) if scores is None else _stats(scores)
    result: dict[str, Any] = {
        "env": task.name,
        "policy": policy.name,
        "episodes": episodes,
        "seed": seed,
        "multi_goal": task.multi_goal,
        "batch_size": batch_size,
        "max_episode_steps": task.steps,
        "return_mean": return_mean,
        "return_std": return_std,
        "normalized_score_mean": score_mean,
        "normalized_score_std": score_std,
        "normalized_score_sem": score_sem,
        "success_rate": float(tally.success.mean()) if task.has_goal else None,
        "first_reach_mean": float(tally.first_reach.mean()) if task.has_goal else None,
        "decisions_per_second": episodes * task.steps / max(policy_time, np.finfo(float).tiny),
        "policy_time_s": policy_time,
        "wall_time_s": wall_time,
        "per_episode": [
            {
                "return": float(tally.returns[i]),
                "normalized_score": None if scores is None else float(scores[i]),
                **({"success": bool(tally.success[i]), "first_reach": int(tally.first_reach[i]),
                    "start": tally.starts[i].tolist(), "target": tally.targets[i].tolist()} if task.has_goal else {}),
                **(_options(task, i) or {}),
            }
            for i in range(episodes)
        ],
    }
    if task.reset_options is not None:
        result["per_task"] = per_task_success([_options(task, i)["task_id"] for i in range(episodes)], tally.success)
    return result


def training_evaluation(env_id: str, episodes: int, device: str) -> Callable:
    """Periodic evaluation during training, for TensorBoard: score, success, plans over the maze and
    one plan's denoising (the picture of `dfplan plan`)."""
    from dfplanner.evaluation.denoising import record_denoising
    from dfplanner.evaluation.plotting import PLOTTED_EPISODES, denoising_figure, episodes_figure, maze2d_layout
    from dfplanner.evaluation.pretrained import load_planner

    task = eval_task(env_id)

    def run(trained) -> dict:
        planner = load_planner(trained, env_id, task.obs_dim, device=device, episode_steps=task.steps)
        result = evaluate(task, planner, episodes, seed=0, batch_size=episodes, progress=False, keep_trajectories=True)
        count = min(PLOTTED_EPISODES, episodes)
        targets = np.array([e["target"] for e in result["per_episode"][-count:]])
        plans = planner.last_plan.observations[-count:, :, list(planner.settings.position_dims)]
        start = np.r_[result["trajectories"][-1, 0], 0.0, 0.0].astype(np.float32)  # the last episode's start, at rest
        return {
            "normalized_score": result["normalized_score_mean"],
            "success_rate": result["success_rate"],
            "plans": episodes_figure(maze2d_layout(task.maze), result["trajectories"][-count:], targets, plans),
            "denoising": denoising_figure(task.maze, record_denoising(planner, start, targets[-1])),
        }

    return run
