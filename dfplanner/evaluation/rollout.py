"""The evaluation loop: episodes of an env family's `EvalTask`, run in lockstep batches of environments.

Each episode is seeded from (seed, episode index) alone (`episode_seed`), so the episodes (starts,
targets, tasks) do not depend on the batch size. The family's task says the rest: the episode length
and whether an episode may end early (maze2d: D4RL's full 300 / 600 / 800 steps; OGBench: terminates at
the goal; a registered gymnasium env: its own termination), the reset options (OGBench: episode i runs
evaluation task i mod 5 + 1, reported per task), success (``info["success"]``, where there is a goal) and
the score normalization (maze2d: D4RL's single-task reference returns, also in the multi-goal setting;
elsewhere raw returns only).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from dfplanner.envs import family_of
from dfplanner.envs.family import TAIL_STEPS, EvalTask, Policy
from dfplanner.errors import DfplannerError


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


def eval_task(env: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
    """The evaluation task of an env or dataset name, as its family defines it (`task`: one of OGBench's 5)."""
    return family_of(env).eval_task(env, multi_goal, task)


def per_task_success(task_ids: list[int], success: np.ndarray) -> dict[str, dict[str, float]]:
    """Success rate and episode count of each task id."""
    ids = np.asarray(task_ids)
    return {str(k): {"episodes": int((ids == k).sum()), "success_rate": float(success[ids == k].mean())} for k in sorted(set(task_ids))}


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode `episode` of an evaluation seeded `seed` (`dfplan eval --seed SEED`):
    `env.reset(seed=episode_seed(SEED, i))` in your own loop starts the CLI's episode i (OGBench's envs
    also take its task, ``options={"task_id": i % 5 + 1}``). `env.reset(seed=SEED)` is another episode."""
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

    def __init__(self, episodes: int, steps: int, trajectories: int):
        self.returns = np.zeros(episodes)
        self.first_reach = np.full(episodes, steps)
        self.success = np.zeros(episodes, dtype=bool)
        self.starts = np.empty((episodes, 2))
        self.targets = np.empty((episodes, 2))
        self.failure = [""] * episodes  # why an episode missed its goal, where the family says (EvalTask.failure_kinds)
        self.xy_before_end = np.empty((episodes, 2))  # the xy TAIL_STEPS steps before the episode's end
        self.tail_start = max(steps - TAIL_STEPS, 0)
        self.first_kept = episodes - min(trajectories, episodes)  # the xy paths of the last episodes only
        self.xy = np.empty((episodes - self.first_kept, steps + 1, 2), dtype=np.float32) if trajectories else None

    def keep_xy(self, index: np.ndarray, t: int, observations: np.ndarray) -> None:
        if t == self.tail_start:
            self.xy_before_end[index] = observations[:, :2]
        if self.xy is not None:
            kept = index >= self.first_kept
            self.xy[index[kept] - self.first_kept, t] = observations[kept, :2]


def _run_batch(task: EvalTask, policy: Policy, envs: list[gym.Env], index: np.ndarray, seed: int, tally: _Tally, bar) -> float:
    """Run the episodes `index` in lockstep, one env each; returns the time spent inside the policy."""
    resets = [env.reset(seed=episode_seed(seed, i), options=_options(task, i)) for env, i in zip(envs, index)]
    observations = np.stack([obs for obs, _ in resets])
    if task.has_goal:
        tally.targets[index] = [info["target"] for _, info in resets]
        tally.starts[index] = observations[:, :2]
    tally.keep_xy(index, 0, observations)
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
        tally.keep_xy(index, t + 1, observations)
        bar.update(len(envs))
    failed = np.flatnonzero(~tally.success[index]) if task.has_goal and task.failure_kinds is not None else []
    if len(failed):
        for i, kind in zip(index[failed], task.failure_kinds(observations[failed], tally.xy_before_end[index[failed]])):
            tally.failure[i] = kind
    return policy_time


def evaluate(
    env: str | EvalTask,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    multi_goal: bool = False,
    batch_size: int = 50,
    progress: bool = True,
    trajectories: int = 0,
) -> dict[str, Any]:
    """Run `episodes` episodes of `policy` and summarize them in a JSON-able dict.

    With ``trajectories`` = N > 0 the dict also holds ``trajectories``: a float32 numpy array
    (min(N, episodes), steps + 1, 2) of the executed xy positions of the last N episodes (the one key
    that is not JSON-able; only those are kept, so memory does not grow with the episode count).
    ``decisions_per_second`` counts one action per env step per episode (the CLI prints it as actions/s),
    timed inside the policy only; a planner makes a plan every `replan_every` of them.
    """
    task = env if isinstance(env, EvalTask) else eval_task(env, multi_goal)
    for name, value, low in (("episodes", episodes, 1), ("batch size", batch_size, 1), ("seed", seed, 0)):
        if value < low:
            raise DfplannerError(f"{name} must be >= {low}, got {value}")
    tally = _Tally(episodes, task.steps, trajectories)
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
    scores = np.array([task.normalize(r) for r in tally.returns]) if task.normalize is not None else None
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
                **({"failure": tally.failure[i]} if tally.failure[i] else {}),
                **(_options(task, i) or {}),
            }
            for i in range(episodes)
        ],
    }
    if task.has_goal and task.failure_kinds is not None:
        result["failures"] = dict(sorted(Counter(kind for kind in tally.failure if kind).items()))
    if task.reset_options is not None:
        result["per_task"] = per_task_success([_options(task, i)["task_id"] for i in range(episodes)], tally.success)
    return result


def training_evaluation(env_id: str, episodes: int, device: str) -> Callable:
    """Periodic evaluation during training, for TensorBoard: score (or return), success, and where the
    family has a maze to draw, plans over it and one plan's denoising (the picture of `dfplan plan`)."""
    from dfplanner.evaluation.denoising import record_denoising
    from dfplanner.evaluation.plotting import PLOTTED_EPISODES, denoising_figure, episodes_figure
    from dfplanner.evaluation.pretrained import load_planner

    task = eval_task(env_id)
    layout = task.family.layout(task.env_id)

    def run(trained) -> dict:
        planner = load_planner(trained, task.env_id, task.obs_dim, device=device, episode_steps=task.steps)
        result = evaluate(task, planner, episodes, seed=0, batch_size=episodes, progress=False, trajectories=episodes)
        scalars = {"normalized_score": result["normalized_score_mean"], "success_rate": result["success_rate"],
                   "return": result["return_mean"]}
        out = {name: value for name, value in scalars.items() if value is not None}
        if layout is None or not planner.settings.position_dims:
            return out
        count = min(PLOTTED_EPISODES, episodes)
        targets = np.array([e["target"] for e in result["per_episode"][-count:]])
        plans = planner.last_plan.observations[-count:, :, list(planner.settings.position_dims)]
        out["plans"] = episodes_figure(layout, result["trajectories"][-count:], targets, plans)
        env = task.make_env()  # the last episode's start, for one plan's denoising
        observation, info = env.reset(seed=episode_seed(0, episodes - 1), options=_options(task, episodes - 1))
        env.close()
        out["denoising"] = denoising_figure(layout, record_denoising(planner, observation, info["target"]))
        return out

    return run
