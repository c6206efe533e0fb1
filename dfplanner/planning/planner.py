"""DiffusionForcingPlanner: receding-horizon planning (MPC) with a trained Diffusion Forcing model.

One decision: observation -> model state (the executed past) -> sampling rows with guidance -> plan ->
actions until the next decision. Every `replan_every` env steps (default: every token) an environment
samples a plan of `horizon` tokens from its model state, then acts on it. The model state is
closed-loop: encoded from the observation `context_tokens` tokens ago, then folded over the tokens
actually executed since (real actions and observations, level 0), which keeps the model within the
window length it was trained on however long the episode.

A batch of environments is a batch of episodes: each environment keeps its own history, token phase
and plan, so a vector env's autoreset of one environment restarts that one alone. Environments due for
a decision at the same step are planned in one batched sampling call (one per group of equal horizon
and context, usually one).

A rolling plan (`rolling=True`) pays the rows up to where token 0 is clean once per episode; at every
later decision the plan shifts by the tokens executed, fresh noise enters at the far end, and the few
rows that bring every token back onto the schedule's ladder are denoised.

A plan made to act (not rolling) stops sampling once the tokens its actions read before the next
decision are clean: the rows after would only refine tokens no action looks at. `plan()` samples every row.

Actions come from the diffused action channel or from PD tracking of the planned states:
    a = kp * (p_plan[t + k] - p) + kd * (v_plan[t + k] - v),   clipped to [-1, 1]
which on maze2d is far more robust than replaying diffused actions (results/ablations.md). With
`track_ahead` k > 0 the PD target is the planned state k steps past the current one (pure pursuit of
the plan): the agent heads for where the plan goes next, cuts its corners and keeps its speed, so the
tokens after the first decide the action too (results/ablations.md, `track-ahead-0`). A plan shorter
than that is aimed at its last state.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from dfplanner.training.checkpoint import TrainedModel
from dfplanner.planning.costs import Cost, make_cost
from dfplanner.utils.device import resolve_device
from dfplanner.errors import DfplannerError
from dfplanner.planning.goal_hold import hold_goal
from dfplanner.planning.guidance import PlanObjective, make_guidance
from dfplanner.planning.history import EpisodeHistory
from dfplanner.diffusion.models import repeat_state
from dfplanner.planning.sampling import RowCallback, sample_tokens
from dfplanner.diffusion.scheduling import build_schedule, rolling_ladder, rolling_transition, validate_schedule
from dfplanner.planning.settings import PlannerSettings, settings_for


@dataclass
class Plan:
    """The plans of a batch in env units. Step i of environment b is the transition it takes at its
    episode step start_step[b] + i; rows past an environment's own plan length are NaN."""

    actions: np.ndarray | None  # (B, L, act_dim)
    observations: np.ndarray | None  # (B, L, obs_dim): o_{t+1}, the state reached after each action
    rewards: np.ndarray | None  # (B, L) if the model has a reward channel
    levels: np.ndarray  # (rows, horizon) the scheduling matrix of the last decision
    start_step: np.ndarray  # (B,)
    kept: np.ndarray  # (B,) which of the candidates sampled for each environment was kept


class DiffusionForcingPlanner:
    """Receding-horizon planner; also a batched policy for `dfplanner.evaluation.rollout.evaluate`.

    Without `settings`, it plans with the defaults overlaid by the checkpoint's own settings and its
    env's facts (see dfplanner.planning.settings), as the shipped planner does."""

    name = "planner"

    def __init__(
        self,
        trained: TrainedModel,
        settings: PlannerSettings | None = None,
        cost: str | Cost | None = None,
        device: str = "auto",
        precision: str = "float32",
        seed: int = 0,
    ):
        self.trained = trained
        self.settings = settings or settings_for(trained.metadata)
        self.device = resolve_device(device)
        if precision not in ("float32", "bfloat16"):
            raise DfplannerError(f"precision must be float32 or bfloat16, got {precision!r}")
        if precision == "bfloat16" and self.device.type != "cuda":
            raise DfplannerError("bfloat16 planning is for CUDA; use float32 on the CPU")
        self.precision = precision
        self.trained.model.to(self.device).eval()
        self._check_settings()
        s = self.settings
        self.cost = make_cost(cost if cost is not None else s.cost, s.position_dims, s.upright_weight, s.upright_dims)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.history: EpisodeHistory | None = None
        self._last_rows: np.ndarray | None = None

    def _check_settings(self) -> None:
        s, layout, levels = self.settings, self.trained.layout, self.trained.schedule.num_levels
        if s.replan_every is not None and s.replan_every % layout.frame_stack:
            raise DfplannerError(f"replan_every ({s.replan_every}) must be a multiple of the model's frame_stack ({layout.frame_stack})")
        needs = {"pd": "observation", "diffused": "action", "inverse": "observation"}[s.action_mode]
        if needs not in layout.channels:
            raise DfplannerError(f"action_mode {s.action_mode!r} needs the {needs} channel in the model's tokens")
        dims = s.position_dims + s.velocity_dims + s.upright_dims
        if any(not 0 <= d < layout.obs_dim for d in dims):
            raise DfplannerError(f"position_dims / velocity_dims / upright_dims {dims} must lie in [0, {layout.obs_dim}) for this model")
        if s.route_lookahead > 0 and self.trained.routes is None and s.cost == "goal":
            warnings.warn("this checkpoint has no routes beside it (NAME.routes.safetensors), so plans aim straight at the goal; "
                          "`dfplan routes --checkpoint CHECKPOINT` makes them from its training data", stacklevel=3)
        if self.trained.routes is not None:
            self.trained.routes.check_traffic(s.route_traffic)
        if s.action_mode == "inverse":
            head = self.trained.heads.get("inverse")
            if head is None:
                raise DfplannerError("action_mode 'inverse' needs an inverse-dynamics head beside the checkpoint: "
                                     "dfplan head train --checkpoint CHECKPOINT --kind inverse")
            if not head.spec.ahead_min <= s.track_ahead + 1 <= head.spec.ahead_max:  # the planned state after step t + track_ahead
                raise DfplannerError(f"track_ahead {s.track_ahead} aims {s.track_ahead + 1} steps ahead, outside the "
                                     f"{head.spec.ahead_min}..{head.spec.ahead_max} the inverse-dynamics head was fitted on")
        if s.action_mode == "pd" and not s.position_dims:
            env = self.trained.metadata.get("env_id") or "no env"
            raise DfplannerError(f"PD tracking needs position_dims (and velocity_dims), which this checkpoint's env ({env}) does "
                                 "not give: train with --env ENV, or plan with action_mode='diffused' (--action-mode diffused)")
        if s.stabilization_level > levels:
            raise DfplannerError(f"stabilization_level must lie in [0, {levels}] for this model, got {s.stabilization_level}")
        longest = s.horizon
        if s.episode_steps is not None and s.horizon * layout.frame_stack > s.episode_steps:
            longest = -(-s.episode_steps // layout.frame_stack)
            warnings.warn(f"horizon {s.horizon} tokens is longer than an episode ({longest} tokens of {layout.frame_stack} steps): "
                          "plans are cut at the episode's end", stacklevel=3)
        ladder = rolling_ladder(self.schedule_matrix(longest))[1]  # also validates a custom matrix, before any episode
        if s.rolling and np.any(np.diff(ladder) < 0):
            raise DfplannerError("rolling plans need a schedule whose ladder never falls along the horizon (pyramid, "
                                 "full_sequence, autoregressive); set rolling = false for this one")

    @property
    def replan_every(self) -> int:
        return self.settings.replan_every or self.trained.layout.frame_stack

    @property
    def tokens_acted_on(self) -> int:
        """Tokens the actions read before the next plan is made: those executed, and with PD or the
        inverse-dynamics head the `track_ahead` steps past them that the last action aims at."""
        steps = self.replan_every + (self.settings.track_ahead if self.settings.action_mode in ("pd", "inverse") else 0)
        return -(-steps // self.trained.layout.frame_stack)

    # ---- episode interface -------------------------------------------------------------------
    def reset(self, observation: np.ndarray, goal: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
        """Start an episode (or a batch of episodes) from this observation, aiming for this goal.

        With `mask` (B,) bool, only the masked environments of the running batch start new episodes
        (a vector env's autoreset): `observation` is the whole batch's, `goal` the new episodes' goals
        (one, or one per environment; None keeps the old ones). The other environments go on as if
        nothing happened."""
        if mask is None:
            self.history = EpisodeHistory.start(self._as_batch(observation, "reset", None), self.trained, self.settings.context_tokens, self.device)
            self.history.single = np.asarray(observation).ndim == 1
            self.goal = None if goal is None else self._goal_tensor(goal)
            return
        history = self._running("reset(mask=...)")
        mask = np.asarray(mask)
        if mask.shape != (history.batch,) or mask.dtype != bool:
            raise DfplannerError(f"reset mask has shape {mask.shape} and dtype {mask.dtype}; expected ({history.batch},) bool")
        if goal is not None:
            new_goal = self._goal_tensor(goal)
            keep = torch.as_tensor(~mask, device=self.device)[:, None]
            self.goal = torch.where(keep, self.goal, new_goal) if self.goal is not None else new_goal
        history.restart(mask, self._as_batch(observation, "reset", history.batch))

    def set_goal(self, goal: np.ndarray) -> None:
        """Change the goal mid-episode; each environment's next plan (at its next token boundary) aims for it."""
        history = self._running("set_goal()")
        self.goal = self._goal_tensor(goal)
        history.replan[:] = True
        history.forget_rolling()  # a new goal starts a new plan from noise

    def act(self, observation: np.ndarray, reward: np.ndarray | float | None = None) -> np.ndarray:
        """The action for this observation; replans on schedule. `reward` (of the last step) is only
        used by models with a reward channel; without it the planned reward stands in."""
        history = self._running("act()")
        obs = self._as_batch(observation, "act", history.batch)
        history.record(obs, reward)
        due = np.flatnonzero(history.due(self.replan_every))
        if len(due):
            self._plan_envs(due, needed=None if self.settings.rolling else self.tokens_acted_on)
        action = self._actions(obs)
        if not np.all(np.isfinite(action)):
            raise DfplannerError(f"planner produced a non-finite action at env step {int(history.episode_step.max())}")
        history.acted(obs, action)
        return action[0] if history.single else action

    def _running(self, what: str) -> EpisodeHistory:
        if self.history is None:
            raise DfplannerError(f"{what} called before reset()")
        return self.history

    def _as_batch(self, observation: np.ndarray, what: str, batch: int | None) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        dim = self.trained.layout.obs_dim
        obs = obs[None] if obs.ndim == 1 else obs
        if obs.ndim != 2 or obs.shape[1] != dim or (batch is not None and len(obs) != batch):
            raise DfplannerError(f"{what}: observation has shape {np.shape(observation)}, expected ({dim},) or ({batch or 'B'}, {dim})")
        if not np.all(np.isfinite(obs)):
            raise DfplannerError(f"{what}: observation contains NaN or inf")
        return obs

    def _goal_tensor(self, goal: np.ndarray) -> torch.Tensor:
        """One goal for the whole batch, or one per environment, as a (B, goal_dim) tensor."""
        batch, dims = self.history.batch, len(self.settings.position_dims)
        try:
            goal = np.asarray(goal, dtype=np.float32)
        except (TypeError, ValueError):
            raise DfplannerError(f"goal must be numbers, got {goal!r}") from None
        rows = goal.reshape(-1, goal.shape[-1]) if goal.ndim else goal.reshape(1, 1)
        goal_dim = dims or rows.shape[1]  # the goal is a position: as many numbers as the position has
        if goal.ndim > 2 or len(rows) not in (1, batch) or rows.shape[1] != goal_dim:
            raise DfplannerError(f"goal has shape {goal.shape}; expected ({goal_dim},) or ({batch}, {goal_dim})")
        if not np.all(np.isfinite(rows)):
            raise DfplannerError("goal contains NaN or inf")
        return torch.as_tensor(np.broadcast_to(rows, (batch, rows.shape[1])).copy(), device=self.device)

    def _actions(self, obs: np.ndarray) -> np.ndarray:
        history, s = self.history, self.settings
        index = np.arange(history.batch)
        offset = history.episode_step - history.plan_start
        if s.action_mode == "diffused":
            action = history.plan["action"][index, offset]
        elif s.action_mode == "inverse":
            ahead = np.minimum(offset + s.track_ahead, history.plan_length - 1)
            action = self.trained.heads["inverse"].act(obs, history.plan["observation"][index, ahead])
        else:
            kp, kd = s.pd_gains
            ahead = np.minimum(offset + s.track_ahead, history.plan_length - 1)  # a short plan: its last state
            target = history.plan["observation"][index, ahead]
            pos, vel = list(s.position_dims), list(s.velocity_dims)
            action = kp * (target[:, pos] - obs[:, pos])
            if vel:
                action = action + kd * (target[:, vel] - obs[:, vel])
        return np.clip(action, -s.action_limit, s.action_limit).astype(np.float32)

    # ---- planning ----------------------------------------------------------------------------
    @property
    def last_plan(self) -> Plan | None:
        """Every environment's current plan; None before the first decision."""
        history = self.history
        if history is None or self._last_rows is None:
            return None
        return Plan(history.plan.get("action"), history.plan.get("observation"), history.plan.get("reward"),
                    self._last_rows, history.plan_start.copy(), history.kept.copy())

    def schedule_matrix(self, horizon: int) -> np.ndarray:
        s, levels = self.settings, self.trained.schedule.num_levels
        if isinstance(s.schedule, str):
            return build_schedule(s.schedule, horizon, s.sampling_steps, levels, s.uncertainty)
        return validate_schedule(np.asarray(s.schedule), np.asarray(s.schedule).shape[1], levels)

    def _horizon(self, env: int) -> int:
        s = self.settings
        if not isinstance(s.schedule, str):
            return np.asarray(s.schedule).shape[1]
        if s.episode_steps is None:
            return s.horizon
        remaining = -(-(s.episode_steps - int(self.history.episode_step[env])) // self.trained.layout.frame_stack)
        return max(1, min(s.horizon, remaining))

    def _decision(self, env: int) -> tuple[np.ndarray, int | None]:
        """The scheduling rows of env's decision, and (rolling) how many tokens its last plan shifts."""
        history, s = self.history, self.settings
        matrix = self.schedule_matrix(self._horizon(env))
        if not s.rolling:
            return matrix, None
        warm_up, ladder = rolling_ladder(matrix)
        if history.rolling[env] is None:
            return warm_up, None
        shift = int(history.episode_step[env] - history.plan_start[env]) // self.trained.layout.frame_stack
        rows = rolling_transition(history.rolling[env][2], ladder, shift, s.sampling_steps, self.trained.schedule.num_levels)
        return rows, shift

    def _plan_envs(self, envs: np.ndarray, on_row: RowCallback | None = None, needed: int | None = None) -> None:
        """Plan for these environments, one batched call per group that shares rows and context; with
        `needed`, only until their first `needed` tokens are clean (see `sample_tokens`)."""
        groups: dict[tuple, list[int]] = {}
        decisions = {}
        for env in envs:
            rows, shift = decisions[env] = self._decision(env)
            key = (rows.tobytes(), rows.shape, shift, self.history.context_length(env))
            groups.setdefault(key, []).append(int(env))
        for members in groups.values():
            rows, shift = decisions[members[0]]
            self._plan_group(np.array(members), rows, shift, on_row, needed)

    def _plan_group(self, envs: np.ndarray, rows: np.ndarray, shift: int | None, on_row: RowCallback | None, needed: int | None) -> None:
        history = self.history
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.precision == "bfloat16")
        with autocast:
            current = torch.as_tensor(history.observation[envs], device=self.device)
            initial = history.rolling_start(envs, shift, rows.shape[1], self.generator) if shift is not None else (None, None)
            estimate, kept = self._sample_best(envs, rows, initial, current, on_row, needed)
        channels = {k: v.float().cpu().numpy() for k, v in self.trained.codec.decode(estimate, current).items()}
        s = self.settings
        if s.hold_radius > 0 and self.goal is not None and "observation" in channels:
            goal = self.goal[torch.as_tensor(envs, device=self.device)].float().cpu().numpy()
            channels["observation"] = hold_goal(channels["observation"], goal, s.hold_radius, s.position_dims, s.velocity_dims)
        history.set_plans(envs, channels, kept)
        self._last_rows = rows

    def _sample_best(
        self, envs: np.ndarray, rows: np.ndarray, initial: tuple, current: torch.Tensor, on_row: RowCallback | None, needed: int | None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Sample `candidates` plans per environment in one batch; return the cheapest of each and its index."""
        s = self.settings
        n = s.candidates if self.cost is not None else 1
        goal = self._aim(envs, current)
        goal, start = (goal.repeat_interleave(n, 0) if goal is not None else None), current.repeat_interleave(n, 0)
        objective = PlanObjective(self.cost, self.trained.codec, start, goal) if self.cost is not None else None
        guidance = make_guidance(s.guidance, objective, s.guidance_scale, s.mcg_samples, s.plan_pull)
        state = repeat_state(self.history.model_state(envs, self.trained.model), n)
        sampled = sample_tokens(
            self.trained.model, self.trained.schedule, state, rows, guidance, s.stabilization_level, s.eta,
            *initial, generator=self.generator, on_row=on_row, needed=needed,
        )
        if s.rolling:
            self.history.keep_rolling(envs, sampled.tokens, sampled.estimate, rows[-1])
        if n == 1:
            return sampled.estimate, np.zeros(len(envs), dtype=np.int64)
        with torch.no_grad():
            best = objective(sampled.estimate).view(-1, n).argmin(dim=1)
        chosen = best + torch.arange(len(envs), device=best.device) * n
        return sampled.estimate[chosen], best.cpu().numpy()

    def _aim(self, envs: np.ndarray, current: torch.Tensor) -> torch.Tensor | None:
        """What the cost aims at: the goal, or with routes the subgoal along the data's route to it."""
        if self.goal is None:
            return None
        goal = self.goal[torch.as_tensor(envs, device=self.device)]
        s = self.settings
        if s.route_lookahead == 0 or self.trained.routes is None:
            return goal
        positions = current[:, list(s.position_dims)].float().cpu().numpy()
        subgoals = self.trained.routes.subgoals(positions, goal.float().cpu().numpy(), s.route_lookahead, s.route_traffic)
        return torch.as_tensor(subgoals, device=self.device, dtype=goal.dtype)

    def plan(self, on_row: RowCallback | None = None) -> Plan:
        """Plan now for every environment (all must be at a token boundary) and return the plans.

        `on_row` sees every sampling row of all candidates (see `sample_tokens`), e.g. to draw the denoising."""
        history = self._running("plan()")
        if history.phase.any():
            raise DfplannerError(
                f"plans start at token boundaries: {int(history.phase.max())} of {self.trained.layout.frame_stack} "
                "steps of the current token are executed"
            )
        self._plan_envs(np.arange(history.batch), on_row)
        return self.last_plan
