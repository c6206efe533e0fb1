"""A ready-to-use policy for other agents and plain gymnasium loops: `load_policy("maze2d-large")`.

`policy(obs) -> action` takes one observation (obs_dim,) or a batch (B, obs_dim) from a gymnasium
vector environment, and plans with the Diffusion Forcing planner underneath. An episode starts with
`policy.reset(obs, goal)`, or `policy.reset()` (the next call starts it); a policy loaded for a maze
may skip it: its first call then aims for the maze's fixed D4RL target. In a vector env, `policy.reset(obs, goal, mask=...)` starts new episodes
in the autoreset sub-environments only. The current plan is public (`policy.plan`,
`policy.planned_positions`), so the policy can also serve as a high-level planner for another
controller; `policy.set_goal` changes the goal within an episode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfplanner.training.checkpoint import checkpoint_paths, load_trained_model
from dfplanner.envs import family_of, is_known, resolve_env
from dfplanner.errors import DfplannerError
from dfplanner.planning.planner import DiffusionForcingPlanner, Plan
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint, shipped_names


class PlannerPolicy:
    """A callable policy around a `DiffusionForcingPlanner`; see the module docstring."""

    def __init__(self, planner: DiffusionForcingPlanner, default_goal: np.ndarray | None = None):
        self.planner = planner
        self.default_goal = default_goal
        self._steps: int | None = None  # actions taken since the last full reset; None before it
        self._next_goal: np.ndarray | None = None  # the goal of an episode started by reset() without an observation
        self._single = False

    def reset(self, observation: np.ndarray | None = None, goal: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
        """Start episodes from `observation` towards `goal` (default: the maze's fixed target).

        Without an observation (the usual agent API, `policy.reset()`), the next call starts the new
        episode from the observation it is given. `mask` (B,) bool restarts only those environments of
        the batch, as after a vector env's autoreset."""
        if observation is None:
            if mask is not None:
                raise DfplannerError("policy.reset: a mask restarts some environments of a batch; give their observations too")
            self._steps, self._next_goal = None, goal
            return
        if mask is None:
            goal = self.default_goal if goal is None else goal
            self._steps, self._single = 0, np.ndim(observation) == 1
        self.planner.reset(observation, goal, mask)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """The action (act_dim,) for one observation, or (B, act_dim) for a batch; in [-1, 1]."""
        if self._steps is None:
            if self._next_goal is None and self.default_goal is None:
                raise DfplannerError("this policy has no default goal: call policy.reset(obs, goal=...) first")
            self.reset(observation, self._next_goal)
        action = self.planner.act(observation)
        self._steps += 1
        return action

    def set_goal(self, goal: np.ndarray) -> None:
        """Aim for `goal` (one, or one per environment) from the next token boundary on."""
        self.planner.set_goal(goal)

    @property
    def plan(self) -> Plan | None:
        """The last sampled plan, batched (B, steps, ...) and in env units; None before the first action."""
        return self.planner.last_plan

    @property
    def planned_positions(self) -> np.ndarray | None:
        """Planned positions from the current env step on: row 0 is where the last action aims.

        (steps, 2) after a single observation, (B, steps, 2) after a batch; None before the first action."""
        plan = self.planner.last_plan
        if plan is None or plan.observations is None:
            return None
        dims = list(self.planner.settings.position_dims)
        offsets = np.maximum(self.planner.history.episode_step - 1 - plan.start_step, 0)
        width = plan.observations.shape[1] - int(offsets.min())
        positions = np.full((len(offsets), width, len(dims)), np.nan, np.float32)
        for env, offset in enumerate(offsets):
            ahead = plan.observations[env, offset:][:, dims]
            positions[env, : len(ahead)] = ahead
        return positions[0] if self._single else positions


def load_policy(name_or_path: str | Path, device: str = "auto", seed: int = 0, allow_unverified: bool = False, **overrides) -> PlannerPolicy:
    """A policy from an env or dataset name with a shipped checkpoint ("maze2d-large",
    "pointmaze-giant-stitch-v0") or a checkpoint path. Keyword overrides change planner settings, as
    `dfplan eval` flags do."""
    name = str(name_or_path)
    if is_known(name):
        checkpoint = shipped_checkpoint(resolve_env(name))
    elif any(p.exists() for p in checkpoint_paths(Path(name_or_path))):
        checkpoint = Path(name_or_path)
    else:
        raise DfplannerError(f"{name!r} is neither an env with a shipped checkpoint ({', '.join(shipped_names())}) nor a checkpoint path")
    trained = load_trained_model(checkpoint, allow_unverified=allow_unverified)
    env_id = trained.metadata.get("env_id")
    if not env_id or not is_known(env_id):
        return PlannerPolicy(load_planner(trained, device=device, seed=seed, **overrides))
    family = family_of(env_id)
    # plans never run past the episode's end (gymnasium.make's time limit)
    steps = family.eval_task(env_id).steps
    planner = load_planner(trained, device=device, seed=seed, **{"episode_steps": steps, **overrides})
    return PlannerPolicy(planner, default_goal=family.default_goal(env_id))
