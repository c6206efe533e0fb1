"""dfplanner: Diffusion Forcing planning for offline reinforcement learning."""

from dfplanner import envs as envs  # registers the maze2d environments with gymnasium
from dfplanner.errors import DfplannerError

__all__ = ["DfplannerError", "OfflineDataset", "envs", "load_dataset"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports: `import dfplanner` stays light (no h5py/minari until a dataset is loaded)."""
    if name in ("load_dataset", "OfflineDataset"):
        from dfplanner import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'dfplanner' has no attribute {name!r}")
