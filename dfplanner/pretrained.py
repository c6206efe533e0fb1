"""Planners ready to act: from a shipped checkpoint (by environment name) or a checkpoint path.

Shipped checkpoints live in `results/checkpoints/<env-id>.{json,safetensors}` (installed as the
package `dfplanner.checkpoints`). A checkpoint carries the planner settings it was tuned with; keyword
overrides change them for one run.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dfplanner.checkpoint import load_trained_model
from dfplanner.envs.maze2d import OBS_DIM
from dfplanner.errors import DfplannerError
from dfplanner.planner import DiffusionForcingPlanner, PlannerSettings

SHIPPED_DIR = Path(str(resources.files("dfplanner.checkpoints")))


def shipped_checkpoint(env_id: str) -> Path:
    """The checkpoint shipped for a maze id such as maze2d-large-v1."""
    path = SHIPPED_DIR / f"{env_id}.json"
    if not path.exists():
        available = sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))
        raise DfplannerError(f"no shipped checkpoint for {env_id}; shipped: {', '.join(available) or 'none'} (or pass --checkpoint)")
    return path


def load_planner(
    checkpoint: str | Path,
    env_id: str | None = None,
    device: str = "auto",
    seed: int = 0,
    episode_steps: int | None = None,
    **overrides,
) -> DiffusionForcingPlanner:
    """A planner from a checkpoint path; checks it was trained for `env_id` when one is given."""
    trained = load_trained_model(Path(checkpoint), device="cpu")
    trained_for = trained.metadata.get("env_id")
    if env_id is not None and trained_for is not None and trained_for != env_id:
        raise DfplannerError(f"{checkpoint}: checkpoint was trained for {trained_for}, not {env_id}")
    if env_id is not None and trained.layout.obs_dim != OBS_DIM:
        raise DfplannerError(
            f"{checkpoint}: checkpoint expects observations of size {trained.layout.obs_dim}, {env_id} gives {OBS_DIM}"
        )
    settings = dict(trained.metadata.get("planner", {}))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if episode_steps is not None:
        settings["episode_steps"] = episode_steps
    planner = DiffusionForcingPlanner(trained, PlannerSettings.from_dict(settings), device=device, seed=seed)
    return planner
