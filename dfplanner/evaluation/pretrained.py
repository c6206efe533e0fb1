"""Planners ready to act: from a shipped checkpoint (by environment name) or a checkpoint path.

Shipped checkpoints live in `results/checkpoints/<env-id>.{json,safetensors}` (installed as the
package data of `dfplanner.evaluation`). Settings come in layers (dfplanner.planning.settings): defaults, the env's
facts, the checkpoint's own `[planner]` section, a preset, explicit overrides.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dfplanner.training.checkpoint import TrainedModel, load_trained_model
from dfplanner.errors import DfplannerError
from dfplanner.planning.planner import DiffusionForcingPlanner
from dfplanner.planning.settings import settings_for

SHIPPED_DIR = Path(str(resources.files("dfplanner.evaluation") / "checkpoints"))


def shipped_checkpoint(env_id: str) -> Path:
    """The checkpoint shipped for an env id such as maze2d-large-v1."""
    path = SHIPPED_DIR / f"{env_id}.json"
    if not path.exists():
        raise DfplannerError(f"no shipped checkpoint for {env_id}; shipped: {', '.join(shipped_names()) or 'none'} (or pass --checkpoint)")
    return path


def shipped_names() -> list[str]:
    """The env ids with a shipped checkpoint."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def load_checked(path: Path, env_id: str | None = None, obs_dim: int | None = None, allow_unverified: bool = False) -> TrainedModel:
    """A checkpoint, checked to be trained for `env_id` and observations of size `obs_dim` when given
    (what every policy that loads one, the planner and the bc baseline, must agree with its env on)."""
    return check_trained_for(load_trained_model(path, device="cpu", allow_unverified=allow_unverified), env_id, obs_dim, str(path))


def check_trained_for(trained: TrainedModel, env_id: str | None, obs_dim: int | None, where: str) -> TrainedModel:
    trained_for = trained.metadata.get("env_id")
    if env_id is not None and trained_for is not None and trained_for != env_id:
        raise DfplannerError(f"{where}: checkpoint was trained for {trained_for}, not {env_id}")
    if obs_dim is not None and trained.layout.obs_dim != obs_dim:
        raise DfplannerError(f"{where}: checkpoint expects observations of size {trained.layout.obs_dim}, {env_id} gives {obs_dim}")
    return trained


def load_planner(
    checkpoint: str | Path | TrainedModel,
    env_id: str | None = None,
    obs_dim: int | None = None,
    device: str = "auto",
    seed: int = 0,
    preset: str | None = None,
    allow_unverified: bool = False,
    precision: str = "float32",
    **overrides,
) -> DiffusionForcingPlanner:
    """A planner from a checkpoint (path or loaded); checks it was trained for `env_id` and its
    observations of size `obs_dim` when they are given."""
    if isinstance(checkpoint, TrainedModel):
        trained = check_trained_for(checkpoint, env_id, obs_dim, "the model")
    else:
        trained = load_checked(Path(checkpoint), env_id, obs_dim, allow_unverified)
    settings = settings_for(trained.metadata, preset, **overrides)
    return DiffusionForcingPlanner(trained, settings, device=device, precision=precision, seed=seed)
