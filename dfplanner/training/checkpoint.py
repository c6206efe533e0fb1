"""Checkpoints that are safe to load from strangers: safetensors weights plus a JSON description.

`NAME.safetensors` holds tensors only (no pickle, nothing executable); `NAME.json` holds everything
needed to rebuild the planner's model: architecture, token layout, normalization statistics, noise
schedule, environment id and training steps, and the sha256 of the weights file (and of the routes
file), so that a corrupted or replaced file is refused instead of planning badly. A description without
the weights' digest is refused too, unless the caller trusts the file (`allow_unverified=True`,
`--allow-unverified`): dfplanner has written it since its first release. Files are written atomically (temp file, fsync, rename), so a run
killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dfplanner.utils.atomic import atomic_output
from dfplanner.errors import DfplannerError
from dfplanner.diffusion.models import build_model
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.planning.action_head import ActionHead, HeadSpec
from dfplanner.planning.routes import ROUTES_SUFFIX, DataRoutes, routes_path
from dfplanner.data.tokens import Normalizer, TokenCodec, TokenLayout

FORMAT_VERSION = 1
DIGEST_KEY = "safetensors_sha256"  # in NAME.json: the sha256 of NAME.safetensors' bytes
TRAINED_ON_KEY = "trained_on"  # in shipped NAME.json: the dataset, the command that makes it and its seed
ROUTES_DIGEST_KEY = "routes_sha256"  # in NAME.json: the sha256 of NAME.routes.safetensors' bytes, when it has routes
HEADS_KEY = "heads"  # in NAME.json: each action head's spec and the sha256 of its NAME.KIND.safetensors
RUN_MODEL_STEM = "model"  # a run folder's checkpoint: RUN/model.{json,safetensors}
DIGEST_CHUNK = 1 << 20


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as temp:
        temp.write_text(json.dumps(data, indent=1) + "\n")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_output(path) as temp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(temp))


def read_json(path: Path) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DfplannerError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DfplannerError(f"{path}: not a valid JSON file ({error})") from None
    if not isinstance(data, dict):
        raise DfplannerError(f"{path}: expected a JSON object")
    return data


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(DIGEST_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_tensors(path: Path, sha256: str | None = None, recorded_in: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; with `sha256`, only if the file still has that digest."""
    path = Path(path)
    if sha256 is not None and path.is_file() and file_sha256(path) != sha256:
        raise DfplannerError(f"{path}: sha256 differs from the one recorded in {recorded_in}; the file is corrupted or was replaced")
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise DfplannerError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise DfplannerError(f"{path}: not a valid safetensors file ({error})") from None


@dataclass
class TrainedModel:
    """A denoiser with everything needed to turn its tokens into env quantities."""

    model: nn.Module
    schedule: NoiseSchedule
    layout: TokenLayout
    normalizer: Normalizer
    model_config: dict
    metadata: dict = field(default_factory=dict)  # env_id, training steps, planner defaults, ...
    routes: DataRoutes | None = None  # the training data's routes (dfplanner.planning.routes), when saved with it
    heads: dict[str, ActionHead] = field(default_factory=dict)  # action heads by kind (dfplanner.planning.action_head)

    @classmethod
    def create(cls, model_config: dict, schedule: NoiseSchedule, layout: TokenLayout, normalizer: Normalizer, metadata: dict | None = None) -> "TrainedModel":
        model = build_model(model_config, layout.token_dim, layout.obs_dim, schedule.num_levels)
        return cls(model, schedule, layout, normalizer, dict(model_config), dict(metadata or {}))

    @property
    def codec(self) -> TokenCodec:
        return TokenCodec(self.layout, self.normalizer)

    def description(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model_config,
            "diffusion": self.schedule.config(),
            "tokens": self.layout.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            **self.metadata,
        }

    def save(self, stem: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write stem.safetensors, then stem.json with its digest (weights default to the model's own).

        Action heads already recorded in stem.json stay recorded: they are fitted on the data, not on
        these weights, so a training run saved again after `dfplan head train` keeps its heads."""
        stem = Path(stem)
        json_path = stem.with_suffix(".json")
        recorded = read_json(json_path).get(HEADS_KEY, {}) if json_path.exists() else {}
        write_tensors(stem.with_suffix(".safetensors"), state_dict or self.model.state_dict())
        digests = {DIGEST_KEY: file_sha256(stem.with_suffix(".safetensors"))}
        if self.routes is not None:
            routes = routes_path(json_path)
            self.routes.save(routes)
            digests[ROUTES_DIGEST_KEY] = file_sha256(routes)
        write_json(json_path, {**self.description(), **digests, **({HEADS_KEY: recorded} if recorded else {})})
        for head in self.heads.values():
            save_head(json_path, head)


def record_digest(json_path: Path, **metadata) -> None:
    """Record the digests of a checkpoint's weights and routes (and any `metadata`) in its JSON, e.g.
    after `dfplan routes` re-made its routes; the weights and routes files are not touched."""
    json_path, weights_path = checkpoint_paths(json_path)
    digests = {DIGEST_KEY: file_sha256(weights_path)}
    if routes_path(json_path).exists():
        digests[ROUTES_DIGEST_KEY] = file_sha256(routes_path(json_path))
    write_json(json_path, {**read_json(json_path), **metadata, **digests})


CHECKPOINT_SUFFIXES = (".json", ".safetensors")


def checkpoint_paths(path: Path) -> tuple[Path, Path]:
    """Accept `x.json`, `x.safetensors`, the stem `x`, or a run folder (its model.*)."""
    path = Path(path)
    if path.name.endswith(ROUTES_SUFFIX):
        raise DfplannerError(f"{path} is a checkpoint's routes file; pass the checkpoint itself "
                             f"({path.name.removesuffix(ROUTES_SUFFIX)}.json)")
    if path.is_dir():
        stem = path / RUN_MODEL_STEM
    else:
        stem = path.with_suffix("") if path.suffix in CHECKPOINT_SUFFIXES else path
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")


def load_trained_model(path: Path, device: str | torch.device = "cpu", allow_unverified: bool = False) -> TrainedModel:
    """Rebuild a TrainedModel from a checkpoint, checking format version and weights (`allow_unverified`:
    load a description that records no digest of its weights)."""
    path = Path(path)
    if path.suffix not in CHECKPOINT_SUFFIXES and path.is_file():
        raise DfplannerError(
            f"{path}: not a dfplanner checkpoint (expected NAME.json with NAME.safetensors); "
            "pickle and torch.save files are never loaded"
        )
    json_path, weights_path = checkpoint_paths(path)
    if not json_path.exists() and not weights_path.exists():
        raise DfplannerError(f"{path}: checkpoint not found (looked for {json_path} and {weights_path})")
    description = read_json(json_path)
    version = description.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DfplannerError(
            f"{json_path}: checkpoint format version {version!r} is newer than this dfplanner "
            f"understands ({FORMAT_VERSION}); upgrade dfplanner"
        )
    try:
        schedule = NoiseSchedule(**description["diffusion"])
        layout = TokenLayout.from_dict(description["tokens"])
        normalizer = Normalizer.from_dict(description["normalizer"])
        model_config = description["model"]
        metadata = {k: v for k, v in description.items() if k not in ("format_version", "model", "diffusion", "tokens", "normalizer", DIGEST_KEY, ROUTES_DIGEST_KEY, HEADS_KEY)}
        trained = TrainedModel.create(model_config, schedule, layout, normalizer, metadata)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DfplannerError(f"{json_path}: incomplete checkpoint description ({error!r})") from None
    for name, values in normalizer.to_dict().items():
        if not np.all(np.isfinite(values)):
            raise DfplannerError(f"{json_path}: normalizer {name!r} holds NaN or inf")
    if DIGEST_KEY not in description and not allow_unverified:
        raise DfplannerError(f"{json_path}: records no sha256 of {weights_path.name}, so a corrupted or replaced weights file "
                             "could not be told apart; if you trust the file, pass --allow-unverified (allow_unverified=True)")
    weights = read_tensors(weights_path, description.get(DIGEST_KEY), json_path.name)
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise DfplannerError(f"{weights_path}: tensor {name!r} holds NaN or inf")
    try:
        trained.model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise DfplannerError(f"{weights_path}: weights do not match the model in {json_path.name} ({first})") from None
    trained.model.to(device).eval()
    routes = routes_path(json_path)
    if routes.exists():
        recorded = description.get(ROUTES_DIGEST_KEY)
        if recorded is not None and file_sha256(routes) != recorded:
            raise DfplannerError(f"{routes}: sha256 differs from the one recorded in {json_path.name}; the file is corrupted or was "
                                 f"replaced (after re-making routes by hand, `dfplan routes --checkpoint {json_path}` records them)")
        trained.routes = DataRoutes.load(routes)
    elif description.get(ROUTES_DIGEST_KEY) is not None:
        raise DfplannerError(f"{json_path}: its routes file {routes.name} is missing")
    trained.heads = {kind: _load_head(json_path, kind, record, layout) for kind, record in description.get(HEADS_KEY, {}).items()}
    return trained


def head_path(json_path: Path, kind: str) -> Path:
    """Where a checkpoint's action head of this kind lives: NAME.KIND.safetensors beside NAME.json."""
    return json_path.with_suffix(f".{kind}.safetensors")


def save_head(json_path: Path, head: ActionHead) -> None:
    """Write the head beside the checkpoint and record its spec and digest in the checkpoint's JSON."""
    path = head_path(json_path, head.spec.kind)
    write_tensors(path, head.state_dict())
    heads = {**read_json(json_path).get(HEADS_KEY, {}), head.spec.kind: {**head.spec.to_dict(), "sha256": file_sha256(path)}}
    write_json(json_path, {**read_json(json_path), HEADS_KEY: heads})


def _load_head(json_path: Path, kind: str, record: dict, layout: TokenLayout) -> ActionHead:
    try:
        spec = HeadSpec(**{k: v for k, v in record.items() if k != "sha256"})
    except TypeError as error:
        raise DfplannerError(f"{json_path}: action head {kind!r} is described incompletely ({error})") from None
    head = ActionHead(spec, layout.obs_dim, layout.act_dim)
    path = head_path(json_path, kind)
    try:
        head.load_state_dict(read_tensors(path, record.get("sha256"), json_path.name))
    except RuntimeError as error:
        raise DfplannerError(f"{path}: weights do not match the head described in {json_path.name}") from error
    return head.eval()
