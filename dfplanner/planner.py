"""DiffusionForcingPlanner: receding-horizon planning (MPC) with a trained Diffusion Forcing model.

At every `replan_every` env steps it samples a plan of `horizon` tokens from the model state, then
acts on it until the next replan. From white noise, a plan costs every row of the scheduling matrix.
A rolling plan (`rolling=True`) pays that once per episode, up to the row where token 0 is clean; the
levels at that row are the schedule's ladder (pyramid: rising along the horizon). At every later
decision the plan shifts by the tokens executed, fresh noise enters at the far end, and the few rows
that bring every token back onto the ladder are denoised: on a pyramid, one network call per token. The model state is closed-loop: it is encoded from the observation
`context_tokens` tokens ago and then folded over the tokens actually executed since (real actions and
observations, level 0). Bounding that context keeps the model within the window length it was trained
on however long the episode; `context_tokens=0` re-encodes the current observation only.

Actions come from the diffused action channel or, by default, from PD tracking of the planned states:
    a = kp * (p_plan - p) + kd * (v_plan - v),   clipped to [-1, 1]
with kp = 12.5, kd = 1.2 (the gains of the Diffusion Forcing authors' maze2d release). On maze2d,
tracking the planned positions is far more robust than replaying diffused actions (REFERENCE.md 7).
Works on a batch of environments at once; a single observation is a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dfplanner.checkpoint import TrainedModel
from dfplanner.errors import DfplannerError
from dfplanner.guidance import Cost, make_cost
from dfplanner.models import repeat_state
from dfplanner.sampling import GUIDANCE_GRADIENTS, RowCallback, SamplerSettings, sample_tokens, tokens_to_plan
from dfplanner.scheduling import build_schedule, rolling_ladder, rolling_transition, validate_schedule

ACTION_MODES = ("pd", "diffused")
PD_GAINS = (12.5, 1.2)
DEVICE_TYPES = ("cpu", "cuda", "mps")  # what the planner and training run on (meta, xla, ... do not)


@dataclass
class PlannerSettings:
    horizon: int = 20  # tokens planned per decision (frame_stack env steps each)
    steps: int = 10  # denoising steps each token takes (rows of a full-sequence schedule)
    schedule: str | np.ndarray = "pyramid"  # a name from dfplanner.scheduling or a custom matrix
    uncertainty: float = 1.0  # pyramid / trapezoid slope, in rows per token
    replan_every: int = 10  # env steps between plans; a multiple of the model's frame_stack
    rolling: bool = False  # continue the last plan on the schedule's ladder (one row per token; worse on maze2d)
    context_tokens: int = 1  # executed tokens folded into the state before each plan
    episode_steps: int | None = None  # if known, the horizon never runs past the episode's end
    action_mode: str = "pd"
    pd_gains: tuple[float, float] = PD_GAINS
    position_dims: tuple[int, ...] = (0, 1)
    velocity_dims: tuple[int, ...] = (2, 3)
    cost: str = "goal"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)

    @classmethod
    def from_dict(cls, data: dict) -> "PlannerSettings":
        data = dict(data)
        sampler = SamplerSettings(**{k: data.pop(k) for k in list(data) if k in SamplerSettings.__dataclass_fields__})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise DfplannerError(f"unknown planner settings: {', '.join(sorted(unknown))}")
        for key in ("pd_gains", "position_dims", "velocity_dims"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(sampler=sampler, **data)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "sampler"}
        if isinstance(out["schedule"], np.ndarray):
            out["schedule"] = out["schedule"].tolist()
        return {**out, **self.sampler.__dict__, "pd_gains": list(self.pd_gains), "position_dims": list(self.position_dims), "velocity_dims": list(self.velocity_dims)}


@dataclass
class Plan:
    """A sampled plan in env units. Step i is the transition taken at env step start_step + i."""

    actions: np.ndarray  # (B, L, act_dim)
    observations: np.ndarray  # (B, L, obs_dim): o_{t+1}, the state reached after each action
    rewards: np.ndarray | None  # (B, L) if the model has a reward channel
    levels: np.ndarray  # (rows, horizon) the scheduling matrix used
    start_step: int


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DfplannerError(f"--device {device} requested but no CUDA GPU is available; use --device cpu or auto")
    try:
        resolved = torch.device(device)
        usable = resolved.type in DEVICE_TYPES and torch.empty(1, device=resolved) is not None  # mps off a Mac fails here
    except (RuntimeError, AssertionError):  # an unknown name; a device type torch knows but this machine lacks
        usable = False
    if not usable:
        raise DfplannerError(f"--device {device} is not usable on this machine; use auto, cpu or cuda")
    return resolved


class DiffusionForcingPlanner:
    """Receding-horizon planner; also a batched policy for `dfplanner.evaluation.evaluate`."""

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
        self.settings = settings or PlannerSettings()
        self.device = resolve_device(device)
        if precision not in ("float32", "bfloat16"):
            raise DfplannerError(f"precision must be float32 or bfloat16, got {precision!r}")
        if precision == "bfloat16" and self.device.type != "cuda":
            raise DfplannerError("bfloat16 planning is for CUDA; use float32 on the CPU")
        self.precision = precision
        self.trained.model.to(self.device).eval()
        self.cost = make_cost(cost if cost is not None else self.settings.cost)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self._check_settings()
        self.last_plan: Plan | None = None
        self._batch: int | None = None

    def _check_settings(self) -> None:
        s, layout = self.settings, self.trained.layout
        if s.replan_every < 1 or s.replan_every % layout.frame_stack:
            raise DfplannerError(
                f"replan_every ({s.replan_every}) must be a positive multiple of the model's frame_stack ({layout.frame_stack})"
            )
        if s.sampler.guidance_gradient not in GUIDANCE_GRADIENTS:
            raise DfplannerError(f"unknown guidance_gradient {s.sampler.guidance_gradient!r}; choose one of {', '.join(GUIDANCE_GRADIENTS)}")
        if s.action_mode not in ACTION_MODES:
            raise DfplannerError(f"unknown action_mode {s.action_mode!r}; choose one of {', '.join(ACTION_MODES)}")
        if s.action_mode == "pd" and "observation" not in layout.channels:
            raise DfplannerError("PD tracking needs the observation channel in the model's tokens")
        if s.action_mode == "diffused" and "action" not in layout.channels:
            raise DfplannerError("diffused actions need the action channel in the model's tokens")
        if s.horizon < 1 or s.steps < 1:
            raise DfplannerError(f"horizon and steps must be >= 1, got {s.horizon} and {s.steps}")
        ladder = rolling_ladder(self.schedule_matrix(s.horizon))[1]
        if s.rolling and np.any(np.diff(ladder) < 0):
            raise DfplannerError(
                "rolling plans need a schedule whose ladder never falls along the horizon (pyramid, "
                "full_sequence, autoregressive); set rolling = false for this one"
            )

    # ---- episode interface -------------------------------------------------------------------
    def _as_batch(self, observation: np.ndarray, what: str) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        dim = self.trained.layout.obs_dim
        if obs.ndim == 1:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != dim or (self._batch is not None and len(obs) != self._batch):
            expected = f"({dim},) or ({self._batch or 'B'}, {dim})"
            raise DfplannerError(f"{what}: observation has shape {np.shape(observation)}, expected {expected}")
        if not np.all(np.isfinite(obs)):
            raise DfplannerError(f"{what}: observation contains NaN or inf")
        return obs

    def reset(self, observation: np.ndarray, goal: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
        """Start an episode (or a batch of episodes) from this observation, aiming for this goal.

        With `mask` (B,) bool, only the masked environments of the running batch start new episodes
        (a vector env's autoreset): `observation` is the whole batch's, `goal` the new episodes' goals
        (one, or one per environment; None keeps the old ones). Every environment's history then
        restarts from its current observation and the whole batch replans at the next act()."""
        if mask is not None:
            self._reset_some(observation, goal, mask)
            return
        self._batch = None
        self._single = np.asarray(observation).ndim == 1
        obs = self._as_batch(observation, "reset")
        self._batch = len(obs)
        self.goal = None if goal is None else self._goal_tensor(goal)
        self._episode_step = np.zeros(self._batch, dtype=np.int64)  # env steps into each episode
        self._restart_history(obs)
        self._step = 0
        self._replan_now = False
        self.last_plan = None

    def _reset_some(self, observation: np.ndarray, goal: np.ndarray | None, mask: np.ndarray) -> None:
        if self._batch is None:
            raise DfplannerError("reset(mask=...) restarts environments of a running batch; call reset() without mask first")
        mask = np.asarray(mask)
        if mask.shape != (self._batch,) or mask.dtype != bool:
            raise DfplannerError(f"reset mask has shape {mask.shape} and dtype {mask.dtype}; expected ({self._batch},) bool")
        obs = self._as_batch(observation, "reset")
        if goal is not None:
            new_goal = self._goal_tensor(goal)
            keep = torch.as_tensor(~mask, device=self.device)[:, None]
            self.goal = torch.where(keep, self.goal, new_goal) if self.goal is not None else new_goal
        self._episode_step[mask] = 0
        self._restart_history(obs)
        self._replan_now = True

    def _restart_history(self, obs: np.ndarray) -> None:
        """Forget the executed past: the next plan starts from `obs` alone."""
        self._boundary_obs = [obs]  # observations at token boundaries, oldest first
        self._executed: list[torch.Tensor] = []  # executed tokens, normalized, (B, 1, D) each
        self._rows: list[np.ndarray] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._rolling_tokens: torch.Tensor | None = None  # all candidates' tokens after the last plan

    def set_goal(self, goal: np.ndarray) -> None:
        """Change the goal mid-episode; the next plan (at the next token boundary) aims for it."""
        if self._batch is None:
            raise DfplannerError("set_goal() called before reset()")
        self.goal = self._goal_tensor(goal)
        self._replan_now = True
        self._rolling_tokens = None  # a new goal starts a new plan from noise

    def _goal_tensor(self, goal: np.ndarray) -> torch.Tensor:
        """One goal for the whole batch, or one per environment, as a (B, goal_dim) tensor."""
        goal = np.asarray(goal, dtype=np.float32)
        rows = goal.reshape(-1, goal.shape[-1]) if goal.ndim else goal.reshape(1, 1)
        if len(rows) not in (1, self._batch) or not np.all(np.isfinite(rows)):
            raise DfplannerError(f"goal has shape {goal.shape}; expected (goal_dim,) or ({self._batch}, goal_dim), finite")
        return torch.as_tensor(np.broadcast_to(rows, (self._batch, rows.shape[1])).copy(), device=self.device)

    def act(self, observation: np.ndarray, reward: np.ndarray | float | None = None) -> np.ndarray:
        """The action for this observation; replans on schedule. `reward` (of the last step) is only
        used by models with a reward channel; without it the planned reward stands in."""
        if self._batch is None:
            raise DfplannerError("act() called before reset()")
        obs = self._as_batch(observation, "act")
        if self._previous is not None:
            self._record(obs, reward)
        if self._plan_due():
            self._replan_now = False
            self.plan()
        offset = self._step - self.last_plan.start_step
        action = self._action(obs, offset)
        if not np.all(np.isfinite(action)):
            raise DfplannerError(f"planner produced a non-finite action at env step {self._step}")
        self._previous = (obs, action)
        self._step += 1
        self._episode_step += 1
        return action[0] if self._single else action

    def _plan_due(self) -> bool:
        if self.last_plan is None:
            return True
        if self._rows:  # plans start at token boundaries
            return False
        length = len(next(v for v in (self.last_plan.observations, self.last_plan.actions) if v is not None)[0])
        return (
            self._step - self.last_plan.start_step >= min(self.settings.replan_every, length)
            or self._replan_now
        )

    def _record(self, obs: np.ndarray, reward) -> None:
        """Keep the executed transition; fold a full token into the model state (closed loop)."""
        layout = self.trained.layout
        prev_obs, prev_action = self._previous
        if reward is None:
            index = self._step - 1 - self.last_plan.start_step
            rewards = self.last_plan.rewards[:, index] if self.last_plan.rewards is not None else np.zeros(self._batch)
        else:
            rewards = np.broadcast_to(np.asarray(reward, dtype=np.float32), (self._batch,))
        self._rows.append(layout.steps_from_arrays(prev_obs, prev_action, rewards, obs))
        if len(self._rows) == layout.frame_stack:
            steps = torch.as_tensor(np.stack(self._rows, axis=1), device=self.device)
            keep = self.settings.context_tokens
            token = layout.to_tokens(self.trained.normalizer.normalize_steps(steps))
            self._executed = (self._executed + [token])[-keep:] if keep else []
            self._boundary_obs = (self._boundary_obs + [obs])[-(keep + 1) :]
            self._rows = []

    def _action(self, obs: np.ndarray, offset: int) -> np.ndarray:
        plan, s = self.last_plan, self.settings
        if s.action_mode == "diffused":
            action = plan.actions[:, offset]
        else:
            kp, kd = s.pd_gains
            target = plan.observations[:, offset]
            pos, vel = list(s.position_dims), list(s.velocity_dims)
            action = kp * (target[:, pos] - obs[:, pos]) + kd * (target[:, vel] - obs[:, vel])
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ---- planning ----------------------------------------------------------------------------
    @torch.no_grad()
    def _model_state(self):
        """Encode the oldest kept boundary observation, then fold the executed tokens since."""
        context = self._executed[-self.settings.context_tokens :] if self.settings.context_tokens else []
        anchor = torch.as_tensor(self._boundary_obs[-(len(context) + 1)], device=self.device)
        state = self.trained.model.initial_state(self.trained.normalizer.normalize_observations(anchor))
        if context:
            tokens = torch.cat(context, dim=1)
            state = self.trained.model.advance(state, tokens, torch.zeros(tokens.shape[:2], dtype=torch.long, device=self.device))
        return state

    def schedule_matrix(self, horizon: int) -> np.ndarray:
        s, levels = self.settings, self.trained.schedule.num_levels
        if isinstance(s.schedule, str):
            return build_schedule(s.schedule, horizon, s.steps, levels, s.uncertainty)
        return validate_schedule(np.asarray(s.schedule), np.asarray(s.schedule).shape[1], levels)

    def _horizon(self) -> int:
        s = self.settings
        if not isinstance(s.schedule, str):
            return np.asarray(s.schedule).shape[1]
        if s.episode_steps is None:
            return s.horizon
        remaining = -(-(s.episode_steps - int(self._episode_step.min())) // self.trained.layout.frame_stack)
        return max(1, min(s.horizon, remaining))

    def _decision_rows(self, horizon: int) -> tuple[np.ndarray, torch.Tensor | None]:
        """The scheduling rows of this decision and the tokens they start from (None: white noise)."""
        matrix = self.schedule_matrix(horizon)
        if not self.settings.rolling:
            return matrix, None
        warm_up, ladder = rolling_ladder(matrix)
        if self._rolling_tokens is None:
            return warm_up, None
        previous = self._rolling_tokens
        shift = (self._step - self.last_plan.start_step) // self.trained.layout.frame_stack
        rows = rolling_transition(self.last_plan.levels[-1], ladder, shift, self.settings.steps, self.trained.schedule.num_levels)
        fresh = max(0, horizon - previous.shape[1] + shift)
        noise = torch.randn(previous.shape[0], fresh, previous.shape[2], generator=self.generator, device=self.device)
        return rows, torch.cat([previous[:, shift:], noise], dim=1)[:, :horizon]

    def _sample_best(
        self, rows: np.ndarray, initial: torch.Tensor | None, current: torch.Tensor, on_row: RowCallback | None
    ) -> torch.Tensor:
        """Sample `candidates` plans per environment in one batch; return the best estimate of each."""
        n = self._candidates()
        state, goal = repeat_state(self._model_state(), n), self.goal
        goal = goal.repeat_interleave(n, 0) if goal is not None else None
        current = current.repeat_interleave(n, 0)
        sampler = self.settings.sampler
        tokens, estimate = sample_tokens(
            self.trained, state, rows, sampler, current, self.cost, goal, initial, self.generator, on_row
        )
        if self.settings.rolling:
            self._rolling_tokens = tokens
        if n == 1:
            return estimate
        with torch.no_grad():
            costs = self.cost(tokens_to_plan(self.trained, estimate, current), goal).view(-1, n)
        best = costs.argmin(dim=1) + torch.arange(costs.shape[0], device=costs.device) * n
        return estimate[best]

    def _candidates(self) -> int:
        return max(1, self.settings.sampler.candidates) if self.cost is not None else 1

    def plan(self, on_row: RowCallback | None = None) -> Plan:
        """Sample a plan from the current state (the executed past) towards the goal.

        `on_row` sees every sampling row of all candidates (see `sample_tokens`), e.g. to draw the denoising."""
        if self._rows:
            raise DfplannerError(
                f"plans start at token boundaries: {len(self._rows)} of {self.trained.layout.frame_stack} steps of the current token are executed"
            )
        rows, initial = self._decision_rows(self._horizon())
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.precision == "bfloat16")
        with autocast:
            current = torch.as_tensor(self._boundary_obs[-1], device=self.device)
            tokens = self._sample_best(rows, initial, current, on_row)
        channels = {k: v.float().cpu().numpy() for k, v in tokens_to_plan(self.trained, tokens, current).items()}
        self.last_plan = Plan(
            actions=channels.get("action"),
            observations=channels.get("observation"),
            rewards=channels.get("reward"),
            levels=rows,
            start_step=self._step,
        )
        return self.last_plan
