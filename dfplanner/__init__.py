"""dfplanner: Diffusion Forcing planning for offline reinforcement learning."""

from dfplanner import envs as envs  # registers the maze2d environments with gymnasium
from dfplanner.errors import DfplannerError

__all__ = ["DfplannerError", "DiffusionForcingPlanner", "OfflineDataset", "PlannerSettings", "envs", "episode_seed", "load_dataset",
           "load_planner", "load_policy"]
_LAZY = {
    "load_dataset": "dfplanner.data.datasets",
    "OfflineDataset": "dfplanner.data.datasets",
    "DiffusionForcingPlanner": "dfplanner.planning.planner",
    "PlannerSettings": "dfplanner.planning.settings",
    "load_planner": "dfplanner.evaluation.pretrained",
    "load_policy": "dfplanner.evaluation.policy",
    "episode_seed": "dfplanner.evaluation.rollout",
}
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports: `import dfplanner` stays light (no torch, h5py or minari until they are used)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dfplanner' has no attribute {name!r}")
