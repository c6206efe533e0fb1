"""`dfplan eval --video DIR`: the episodes of the first environment of the batch, recorded by gymnasium's
`RecordVideo` (one MP4 per episode) from the ``rgb_array`` frames of the family's render env (maze2d's
top-down picture). Needs moviepy (the ``[video]`` extra)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import gymnasium as gym

from dfplanner.envs.family import EvalTask
from dfplanner.errors import DfplannerError
from dfplanner.utils.atomic import check_writable


def recording(task: EvalTask, folder: str | Path) -> EvalTask:
    """`task` whose first environment records its episodes into `folder`, checked before any episode runs."""
    if task.make_render_env is None:
        raise DfplannerError(f"--video records envs that render frames, as maze2d's do; {task.name} renders none here")
    try:
        import moviepy  # noqa: F401  (RecordVideo's encoder)
    except ImportError:
        raise DfplannerError("--video needs moviepy: pip install -e \".[video]\"") from None
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DfplannerError(f"cannot create video folder {folder}: {error.strerror}") from None
    check_writable(folder / f"{task.name}-episode-0.mp4")
    spaces = task.spaces  # probed on a plain env, so that the recorder is the first env the evaluation makes
    recorders: list[gym.Env] = []

    def make_env() -> gym.Env:
        if recorders:
            return task.make_env()
        env = task.make_render_env()
        with warnings.catch_warnings():  # that the folder exists: it was made above, on purpose
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
            recorders.append(gym.wrappers.RecordVideo(env, str(folder), episode_trigger=lambda _: True,
                                                      name_prefix=task.name, disable_logger=True))
        return recorders[0]

    recorded = dataclasses.replace(task, make_env=make_env)
    recorded.__dict__["spaces"] = spaces  # the cached_property's value: nothing asks make_env for a probe
    return recorded


def videos_in(folder: str | Path, task: EvalTask) -> list[Path]:
    """The MP4s a recording of `task` wrote into `folder`."""
    return sorted(Path(folder).expanduser().glob(f"{task.name}-episode-*.mp4"))
