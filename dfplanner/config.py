"""Run configuration: package defaults, overlaid by a per-environment TOML file, overlaid by flags.

The per-environment files (`envs/configs/<env>.toml`, installed as `dfplanner.envs/configs`) hold
the tuned settings, so `dfplan train --env maze2d-large` with no other flags reproduces the shipped
checkpoint. A file may name a `base` file of the same folder (e.g. the env family's) that it overlays,
so it holds only what differs. The `[planner]` section holds planner settings that differ from
dfplanner.settings' defaults; it travels with the checkpoint. Normalization statistics never live
here: they are computed from the data and stored in the checkpoint.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

from dfplanner.errors import DfplannerError

CONFIG_DIR = Path(str(resources.files("dfplanner.envs") / "configs"))

DEFAULTS: dict = {
    "data": {"cross_episodes": False},
    "tokens": {"frame_stack": 10, "channels": ["action", "observation"], "observation_deltas": True, "window": 24},
    "model": {"type": "recurrent", "hidden": 256, "layers": 1},
    "diffusion": {"num_levels": 1000, "betas": "linear", "prediction": "x0"},
    "training": {
        "steps": 10_000,
        "batch_size": 128,
        "lr": 1e-3,
        "min_lr_ratio": 0.1,  # cosine decay ends at lr * min_lr_ratio
        "weight_decay": 1e-4,
        "warmup": 200,
        "ema_decay": 0.999,
        "grad_clip": 1.0,
        "loss_weighting": "uniform",
        "save_every": 500,
        "log_every": 50,
        "seed": 0,
    },
    "planner": {},
}


def merge(base: dict, override: dict) -> dict:
    """Recursive dict overlay; unknown top-level sections are rejected by the caller."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise DfplannerError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise DfplannerError(f"{path}: invalid TOML ({error})") from None


def read_layer(path: Path) -> dict:
    """A config file overlaid on its `base` chain (bases are looked up in the packaged configs)."""
    data = read_toml(path)
    base = data.pop("base", None)
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise DfplannerError(f"{path}: unknown config sections {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if base is None:
        return data
    if not (CONFIG_DIR / f"{base}.toml").exists():
        raise DfplannerError(f"{path}: base config {base!r} not found in {CONFIG_DIR}")
    return merge(read_layer(CONFIG_DIR / f"{base}.toml"), data)


def load_config(env_id: str | None = None, path: Path | None = None) -> dict:
    """Defaults, then the environment's tuned file (if any), then a user file (if given)."""
    config = copy.deepcopy(DEFAULTS)
    layers = []
    if env_id is not None and (CONFIG_DIR / f"{env_id}.toml").exists():
        layers.append(CONFIG_DIR / f"{env_id}.toml")
    if path is not None:
        layers.append(Path(path))
    for layer in layers:
        config = merge(config, read_layer(layer))
    return config
