"""Planner settings: the one home of every planning choice, its default, its range and its help text.

Where a value comes from, lowest to highest (`resolve_settings`, which `dfplan config show` prints with
each value's layer): the defaults below; the env family's facts (its `planner_facts`: which observation
dimensions are positions and velocities, the action bound, how far PD aims along the plan, and for envs
without a goal the reward cost and diffused actions); the `[planner]` section a checkpoint carries (its
training config's, e.g. maze2d's horizon 5); a preset (`presets/NAME.toml`, e.g. "paper"); then
explicit overrides (`dfplan eval` flags, `load_planner(..., **overrides)`).

What the defaults are: the settings that serve every family, each the best measured on maze2d with
seed 777 where it was tuned there: the sampling (2 steps per token, uncertainty 0.05; results/
sampling_grid.md, results/tuning.md), the guidance (gradient through the model, scale 5) and the goal
hold (0.5), the cost aimed 40 recorded steps along the data's routes (dfplanner.planning.routes), MCG off
(the ablation on seeds 0 and 1 does not support it, results/ablations.md), `plan_pull` off (it scores
higher, but with it one planned token does as well as five: the plan no longer decides the action). Where
the best value depends on the env, the defaults are not the best and the family or its config sets it:
the horizon (default 20; maze2d and OGBench PointMaze ship 5), `track_ahead` (default 0: how far ahead
to aim depends on the dynamics; maze2d and OGBench PointMaze set 15, on the tests' damped point it
overshoots), `route_lookahead` (OGBench PointMaze sets 20) and `route_traffic` (default 0, the shortest
routes, which graze wall corners: a point mass does not mind, an ant falls over; the AntMaze configs set 1 or 2). The `dfplan eval` / `dfplan plan` flags
are generated from the fields' metadata. Settings are frozen: change them with `dataclasses.replace`
(which validates again), never on a built planner.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from dfplanner.planning.costs import COST_NAMES
from dfplanner.errors import DfplannerError
from dfplanner.diffusion.scheduling import SCHEDULES

ACTION_MODES = ("pd", "diffused", "inverse")
# The strategies of dfplanner.planning.guidance (named here so that building the CLI does not import torch).
GUIDANCE_NAMES = ("plan", "model", "paper")
# PD gains of the Diffusion Forcing authors' maze2d release: a = kp (p_plan - p) + kd (v_plan - v).
PD_GAINS = (12.5, 1.2)
# Settings keys of earlier dfplanner versions, still read from old checkpoints.
RENAMED = {"steps": "sampling_steps", "guidance_gradient": "guidance"}
PRESET_DIR = Path(str(resources.files("dfplanner.planning") / "presets"))
# The integer settings' ranges. The upper ends bound the work and memory one decision may take (the
# batch times candidates times MCG samples are sampled at once; a horizon is cut at the episode's end).
INT_RANGES = {"horizon": (1, 10_000), "sampling_steps": (1, 1000), "replan_every": (1, 100_000), "context_tokens": (0, 1000),
              "episode_steps": (1, 10**7), "mcg_samples": (1, 64), "candidates": (1, 64), "stabilization_level": (0, 100_000),
              "route_lookahead": (0, 100_000), "track_ahead": (0, 10_000)}


def _setting(default, help: str, choices: tuple | None = None, flag: bool = True):
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass(frozen=True)
class PlannerSettings:
    horizon: int = _setting(20, "tokens planned per decision (frame_stack env steps each)")
    sampling_steps: int = _setting(2, "denoising steps each token takes (rows of a full-sequence schedule)")
    schedule: str | np.ndarray = _setting("pyramid", "scheduling matrix: a name, or a custom (rows, horizon) matrix in the API", SCHEDULES)
    uncertainty: float = _setting(0.05, "pyramid / trapezoid slope, in rows per token (0: full sequence)")
    replan_every: int | None = _setting(None, "env steps between plans, a multiple of the model's frame_stack")
    rolling: bool = _setting(False, "continue the last plan on the schedule's ladder instead of starting from noise")
    context_tokens: int = _setting(1, "executed tokens folded into the model state before each plan (0: the current observation only)")
    episode_steps: int | None = _setting(None, "episode length, if known: plans never run past its end", flag=False)
    action_mode: str = _setting("pd", "actions from PD tracking of the planned states, the diffused actions, or the checkpoint's "
                                "inverse-dynamics head on the planned state track_ahead steps on", ACTION_MODES)
    pd_gains: tuple[float, float] = _setting(PD_GAINS, "PD gains kp kd on planned positions and velocities")
    track_ahead: int = _setting(0, "PD aims at the planned state this many env steps past the current one (pure pursuit of the plan; 0: the current step's)")
    action_limit: float = _setting(1.0, "actions are clipped to [-limit, limit]: the env's action bound", flag=False)
    position_dims: tuple[int, ...] = _setting((), "observation dimensions holding the position (goal cost, PD)", flag=False)
    velocity_dims: tuple[int, ...] = _setting((), "observation dimensions holding the velocity (PD)", flag=False)
    cost: str = _setting("goal", "what guidance minimizes", COST_NAMES)
    upright_weight: float = _setting(0.0, "add this times the planned body's tilt (1 - its up axis z, per step) to the cost (0: off; "
                                     "dfplanner.planning.costs.Tilt)")
    upright_dims: tuple[int, ...] = _setting((), "observation dimensions holding the body's orientation quaternion w, x, y, z (tilt cost)", flag=False)
    route_lookahead: int = _setting(40, "aim the cost this many recorded steps along the training data's route to the goal (0: straight at the goal; dfplanner.planning.routes)")
    route_traffic: float = _setting(0.0, "routes prefer links the data took often: each costs length x (median count / count)^this (0: the shortest; dfplanner.planning.routes)")
    hold_radius: float = _setting(0.5, "from its first step this near the goal, a plan holds the goal at rest (0: off; dfplanner.planning.goal_hold)")
    guidance: str = _setting("model", "how the cost's gradient steers sampling (dfplanner.planning.guidance)", GUIDANCE_NAMES)
    guidance_scale: float = _setting(5.0, "guidance strength (0: unguided)")
    plan_pull: float = _setting(0.0, "scale of a plan-space pull added after the guidance step (0: off; dfplanner.planning.guidance.PlanPull)")
    mcg_samples: int = _setting(1, "Monte Carlo Guidance: futures the gradient is averaged over (1: off)")
    candidates: int = _setting(1, "plans sampled per decision; the cheapest is kept")
    stabilization_level: int = _setting(10, "noise level at which generated tokens are fed back (stabilization)")
    eta: float = _setting(0.0, "DDIM eta: 0 deterministic, 1 the DDPM posterior")

    def __post_init__(self) -> None:
        for name in ("pd_gains", "position_dims", "velocity_dims", "upright_dims"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        for f in dataclasses.fields(self):
            choices, value = f.metadata["choices"], getattr(self, f.name)
            if choices and isinstance(value, str) and value not in choices:
                raise DfplannerError(f"unknown {f.name} {value!r}; choose one of {', '.join(choices)}")
        if not isinstance(self.schedule, (str, np.ndarray, list)):
            raise DfplannerError(f"schedule must be a name ({', '.join(SCHEDULES)}) or a matrix, got {self.schedule!r}")

    def _check_numbers(self) -> None:
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if value is None and name in ("replan_every", "episode_steps"):
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
                raise DfplannerError(f"{name} must be an integer in {low}..{high:,}, got {value!r}")
        for name, low, high in (("uncertainty", 0, math.inf), ("guidance_scale", 0, math.inf), ("plan_pull", 0, math.inf), ("eta", 0, 1), ("hold_radius", 0, math.inf),
                                ("route_traffic", 0, math.inf), ("upright_weight", 0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or not math.isfinite(value):
                raise DfplannerError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")
        if isinstance(self.action_limit, bool) or not isinstance(self.action_limit, (int, float)) or not 0 < self.action_limit < math.inf:
            raise DfplannerError(f"action_limit must be a finite number > 0, got {self.action_limit!r}")
        if len(self.pd_gains) != 2 or not all(isinstance(g, (int, float)) and math.isfinite(g) for g in self.pd_gains):
            raise DfplannerError(f"pd_gains must be two finite numbers kp, kd, got {self.pd_gains!r}")

    @classmethod
    def from_dict(cls, data: dict, base: PlannerSettings | None = None) -> PlannerSettings:
        """`base` (default: the defaults) with the keys of `data` replaced; unknown keys are an error."""
        data = {RENAMED.get(k, k): v for k, v in data.items() if v is not None}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DfplannerError(f"unknown planner settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(base or cls(), **data)

    def to_dict(self) -> dict:
        """JSON-able: tuples as lists, a custom matrix as nested lists."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, np.ndarray):
                out[key] = value.tolist()
        return out


def resolve_settings(metadata: dict, preset_name: str | None = None, **overrides) -> tuple[PlannerSettings, dict[str, str]]:
    """The settings a checkpoint (its metadata) plans with, and the layer each value came from:
    defaults < the env family's facts < the checkpoint's [planner] < a preset < overrides (None values
    in `overrides` mean "not given"). Each layer is validated as it is applied."""
    from dfplanner.envs import family_of, planner_facts

    env_id = metadata.get("env_id")
    facts = planner_facts(env_id)
    layers = [(f"{family_of(env_id).name} env facts" if facts else "env facts", facts),
              ("checkpoint [planner]", metadata.get("planner", {}))]
    if preset_name is not None:
        layers.append((f"preset {preset_name}", preset(preset_name)))
    layers.append(("override", overrides))
    settings = PlannerSettings()
    sources = dict.fromkeys(settings.to_dict(), "default")
    for label, values in layers:
        settings = PlannerSettings.from_dict(values, settings)
        sources.update({RENAMED.get(name, name): label for name, value in values.items() if value is not None})
    return settings, sources


def settings_for(metadata: dict, preset_name: str | None = None, **overrides) -> PlannerSettings:
    """The settings of `resolve_settings`, without their sources."""
    return resolve_settings(metadata, preset_name, **overrides)[0]


def preset(name: str) -> dict:
    """The `[planner]` table of a named preset (presets/NAME.toml), over the preset it names as `base`."""
    path = PRESET_DIR / f"{name}.toml"
    if not path.exists():
        raise DfplannerError(f"unknown preset {name!r}; presets: {', '.join(preset_names()) or 'none'}")
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    base = preset(data["base"]) if "base" in data else {}
    return {**base, **data.get("planner", {})}


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
