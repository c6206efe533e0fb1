"""Run configuration: package defaults, overlaid by a per-environment TOML file, overlaid by flags.

The per-environment files (`envs/configs/<env>.toml`, installed as `dfplanner.envs/configs`) hold
the tuned settings, so `dfplan train --env maze2d-large` with no other flags reproduces the shipped
checkpoint. A file may name a `base` file of the same folder (e.g. the env family's) that it overlays,
so it holds only what differs. Normalization statistics never live here: they are computed from the
data and stored in the checkpoint.

`SCHEMA` is the one description of every key (type, default, range, meaning): `load_config` checks
each file against it before any work starts, and docs/config.md is generated from it
(`python -m dfplanner.training.config > docs/config.md`). The `[planner]` section holds the planner settings
that differ from dfplanner.planning.settings' defaults, read as `PlannerSettings.from_dict` reads them; it
travels with the checkpoint.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dfplanner.errors import DfplannerError
from dfplanner.diffusion.models import MODEL_TYPES, TransformerDenoiser
from dfplanner.diffusion.noise import BETA_SCHEDULES, PREDICTIONS
from dfplanner.diffusion.objective import LOSS_WEIGHTINGS
from dfplanner.data.tokens import CHANNELS

CONFIG_DIR = Path(str(resources.files("dfplanner.envs") / "configs"))
PLANNER_SECTION = "planner"
TRANSFORMER_ONLY = ("heads", "max_tokens")
DEFAULT_HEADS = inspect.signature(TransformerDenoiser).parameters["heads"].default


@dataclass(frozen=True)
class Range:
    """The values a key accepts, as the reference states them and as a check."""

    text: str
    holds: Callable[[Any], bool]


POSITIVE = Range("> 0", lambda v: v > 0)
NON_NEGATIVE = Range(">= 0", lambda v: v >= 0)
FRACTION = Range("0 to 1", lambda v: 0 <= v <= 1)
DECAY = Range("0 to 1, 1 excluded", lambda v: 0 <= v < 1)
ANY = Range("true or false", lambda v: True)


def between(low: int, high: int) -> Range:
    """An integer range, both ends included: every size a config sets has an upper bound, so that a typo
    (hidden = 100000000) is an error, not an allocation of many GiB."""
    return Range(f"{low} to {high:,}", lambda v: low <= v <= high)


MAX_STEPS = 10**9  # optimizer steps, warmup, save and log intervals
SEED_RANGE = between(0, 2**32 - 1)  # numpy's and torch's seed range


def one_of(choices: tuple[str, ...]) -> Range:
    return Range(" | ".join(choices), lambda v: v in choices)


def subset_of(choices: tuple[str, ...]) -> Range:
    return Range(f"non-empty subset of {list(choices)}", lambda v: len(v) > 0 and set(v) <= set(choices))


@dataclass(frozen=True)
class Key:
    """One configuration key. `default` None: unset unless a file sets it (the model class's default applies)."""

    kind: type
    default: Any
    allowed: Range
    meaning: str

    def check(self, value: Any, where: str) -> None:
        if not _has_kind(value, self.kind):
            raise DfplannerError(f"{where} must be {_KIND_NAMES[self.kind]}, got {value!r}")
        if not self.allowed.holds(value):
            raise DfplannerError(f"{where} must be {self.allowed.text}, got {value!r}")


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list of strings"}


def _has_kind(value: Any, kind: type) -> bool:
    """TOML types: bool is not a number here, an integer is a valid float, floats are finite."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, kind)


SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "cross_episodes": Key(bool, False, ANY, "training windows may span episode boundaries (only where the data is one continuous run, as D4RL maze2d is)"),
    },
    "tokens": {
        "frame_stack": Key(int, 10, between(1, 1000), "env steps stacked into one token"),
        "channels": Key(list, ["action", "observation"], subset_of(CHANNELS), "what a token holds"),
        "observation_deltas": Key(bool, True, ANY, "tokens hold o[t+1] - o[t] instead of o[t+1]"),
        "window": Key(int, 24, between(1, 4096), "tokens per training window"),
    },
    "model": {
        "type": Key(str, "recurrent", one_of(MODEL_TYPES), "the denoiser: the paper's GRU or a causal transformer"),
        "hidden": Key(int, 256, between(1, 4096), "hidden width"),
        "layers": Key(int, 1, between(1, 64), "GRU or transformer layers"),
        "heads": Key(int, None, between(1, 256), "attention heads, a divisor of hidden (transformer only; class default 4)"),
        "max_tokens": Key(int, None, between(1, 65536), "longest token context (transformer only; class default 128)"),
    },
    "diffusion": {
        "num_levels": Key(int, 1000, between(1, 100_000), "noise levels K"),
        "betas": Key(str, "linear", one_of(BETA_SCHEDULES), "noise schedule"),
        "prediction": Key(str, "x0", one_of(PREDICTIONS), "what the network predicts"),
    },
    "training": {
        "steps": Key(int, 10_000, between(1, MAX_STEPS), "optimizer steps of the run (`--steps`)"),
        "batch_size": Key(int, 128, between(1, 65536), "windows per step and process (`--batch-size`)"),
        "lr": Key(float, 1e-3, POSITIVE, "peak AdamW learning rate"),
        "min_lr_ratio": Key(float, 0.1, FRACTION, "cosine decay ends at lr * min_lr_ratio"),
        "weight_decay": Key(float, 1e-4, NON_NEGATIVE, "AdamW weight decay"),
        "warmup": Key(int, 200, between(0, MAX_STEPS), "steps of linear learning-rate warmup"),
        "ema_decay": Key(float, 0.999, DECAY, "decay of the weights' exponential moving average (what eval loads)"),
        "grad_clip": Key(float, 1.0, POSITIVE, "gradient norm clip"),
        "loss_weighting": Key(str, "uniform", one_of(LOSS_WEIGHTINGS), "per-token loss weight"),
        "save_every": Key(int, 500, between(1, MAX_STEPS), "steps between checkpoints (`--save-every`)"),
        "log_every": Key(int, 50, between(1, MAX_STEPS), "steps between TensorBoard scalars"),
        "seed": Key(int, 0, SEED_RANGE, "seeds the initial weights, data order and noise"),
    },
}

DEFAULTS: dict = {
    **{section: {name: key.default for name, key in keys.items() if key.default is not None} for section, keys in SCHEMA.items()},
    PLANNER_SECTION: {},
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


def _unknown(name: str, known: list[str], what: str, where: str) -> DfplannerError:
    """An unknown key or section, with the nearest known one when there is a close one."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return DfplannerError(f"{where}: unknown {what} {name!r}; {hint}")


def validate(config: dict, where: str) -> None:
    """Every section and key known, of its type and in its range (a whole config or one file's layer)."""
    for section, values in config.items():
        if section not in DEFAULTS:
            raise _unknown(section, list(DEFAULTS), "section", where)
        if not isinstance(values, dict):
            raise DfplannerError(f"{where}: [{section}] must be a table, got {values!r}")
        if section == PLANNER_SECTION:
            _validate_planner(values, where)
            continue
        for name, value in values.items():
            if name not in SCHEMA[section]:
                raise _unknown(name, list(SCHEMA[section]), f"key in [{section}]", where)
            SCHEMA[section][name].check(value, f"{where}: [{section}] {name}")


def _validate_planner(values: dict, where: str) -> None:
    from dfplanner.planning.settings import PlannerSettings

    try:
        PlannerSettings.from_dict(values)
    except (DfplannerError, TypeError, ValueError) as error:
        known = list(PlannerSettings().to_dict())
        close = [match for name in values if name not in known for match in difflib.get_close_matches(name, known, n=1)]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DfplannerError(f"{where}: [{PLANNER_SECTION}] {error}{hint}") from None


def _validate_model(model: dict, where: str) -> None:
    """Keys that only one model type reads, and the transformer's width split over its heads."""
    if model["type"] != "transformer":
        for name in TRANSFORMER_ONLY:
            if name in model:
                raise DfplannerError(f"{where}: [model] {name} is a transformer setting; this model's type is {model['type']!r}")
    elif model["hidden"] % model.get("heads", DEFAULT_HEADS):
        heads = model.get("heads", DEFAULT_HEADS)
        raise DfplannerError(f"{where}: [model] hidden ({model['hidden']}) must be a multiple of heads ({heads})")


def read_layer(path: Path) -> dict:
    """A config file overlaid on its `base` chain (bases are looked up in the packaged configs)."""
    data = read_toml(path)
    base = data.pop("base", None)
    validate(data, str(path))
    if base is None:
        return data
    if not (CONFIG_DIR / f"{base}.toml").exists():
        raise DfplannerError(f"{path}: base config {base!r} not found in {CONFIG_DIR}")
    return merge(read_layer(CONFIG_DIR / f"{base}.toml"), data)


def load_config(env_id: str | None = None, path: Path | None = None) -> dict:
    """Defaults, then the environment's tuned file (if any), then a user file (if given); each checked."""
    config = copy.deepcopy(DEFAULTS)
    layers = []
    if env_id is not None and (CONFIG_DIR / f"{env_id}.toml").exists():
        layers.append(CONFIG_DIR / f"{env_id}.toml")
    if path is not None:
        layers.append(Path(path))
    for layer in layers:
        config = merge(config, read_layer(layer))
    _validate_model(config["model"], str(layers[-1]) if layers else "defaults")
    return config


def first_difference(layer: dict, config: dict) -> str | None:
    """The first key that a layer (a file's sections) sets to another value than `config` has, as
    '[section] key = A' for comparison; None if the layer agrees with `config`."""
    for section, values in layer.items():
        for name, value in values.items():
            if config.get(section, {}).get(name) != value:
                return f"[{section}] {name} = {_toml_value(value)}"
    return None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(value)


def to_toml(config: dict) -> str:
    """A config as TOML that `--config` reads back identically."""
    blocks = []
    for section, values in config.items():
        lines = [f"[{section}]"] + [f"{name} = {_toml_value(value)}" for name, value in values.items() if value is not None]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def reference() -> str:
    """docs/config.md: every key's meaning, default and range, from SCHEMA."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `dfplanner/training/config.py` by `python -m dfplanner.training.config > docs/config.md`. A run's config is",
        "these defaults, overlaid by the environment's tuned file (`envs/configs/ENV.toml`), overlaid by",
        "`--config FILE`, overlaid by `--steps`, `--batch-size` and `--save-every`; `dfplan config show` prints",
        "it. Every file is checked when read: an unknown key (with the nearest known one), a wrong type or a",
        "value out of range stops the command before any work starts.",
        "",
        "| key | default | range | meaning |",
        "|---|---|---|---|",
    ]
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            default = "unset" if key.default is None else f"`{_toml_value(key.default)}`"
            allowed = key.allowed.text.replace("|", "\\|")  # a table cell
            lines.append(f"| `[{section}] {name}` | {default} | {allowed} | {key.meaning} |")
    lines += [
        "",
        "`[planner]`: the planner settings recorded in the checkpoint (defaults for `dfplan eval` and",
        "`dfplan plan`, whose flags override them for one run): the fields of `PlannerSettings`",
        "(`dfplanner/planning/settings.py`, each with its default, range and help), read by",
        "`PlannerSettings.from_dict`; `dfplan config show --env ENV` prints every one with the layer it comes from.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
