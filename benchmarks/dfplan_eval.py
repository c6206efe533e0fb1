"""One `dfplan eval` run in a subprocess, so that its timing and peak memory are its own."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dfplanner.evaluation.pretrained import shipped_checkpoint
from dfplanner.planning.routes import routes_path
from dfplanner.planning.settings import settings_for
from dfplanner.training.checkpoint import ROUTES_DIGEST_KEY, TRAINED_ON_KEY

from report import ROOT


def run_eval(flags: list[str], threads: int | None = None) -> dict:
    """`dfplan eval FLAGS --json OUT` from the repository's root: its result plus `peak_rss_mb`, the
    subprocess's peak resident memory.

    `threads` pins torch's intra-op threads (OMP/MKL)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "dfplanner.cli", "eval", *flags, "--json", str(path)]
        print(" ".join(command[2:]), flush=True)
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            raise SystemExit(f"failed (wait status {status}): {' '.join(command)}")
        result = json.loads(path.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


# Checkpoint keys that describe it without changing a plan (the routes' digest and the data's recipe):
# left out of the digest, so that recording them does not make stored results stale.
DESCRIPTIVE_KEYS = (ROUTES_DIGEST_KEY, TRAINED_ON_KEY)


def planning_digest(checkpoint: Path) -> str:
    """sha256 of a checkpoint's JSON (architecture, weights digest, planner section), its routes file
    and the settings it plans with by default (which the code's defaults and the env's facts decide as
    well): a stored result made with another digest is stale."""
    checkpoint = Path(checkpoint)
    routes = routes_path(checkpoint)
    description = json.loads(checkpoint.read_text())
    settings = settings_for(description).to_dict()
    planning = {key: value for key, value in description.items() if key not in DESCRIPTIVE_KEYS}
    data = ((json.dumps(planning, indent=1) + "\n").encode() + (routes.read_bytes() if routes.exists() else b"")
            + json.dumps(settings, sort_keys=True).encode())
    return hashlib.sha256(data).hexdigest()


def checkpoint_digest(env_id: str) -> str:
    """`planning_digest` of the checkpoint shipped for this env."""
    return planning_digest(shipped_checkpoint(env_id))


def cached_eval(out: Path, flags: list[str], episodes: int, seed: int, digest: str, batch_size: int | None = None) -> dict:
    """`run_eval` of `flags` on `episodes` episodes (one batch, or `batch_size`) of `seed`, stored in `out` with `digest`
    (what the result depends on besides the flags); a stored result with the same episodes, seed and
    digest is returned instead, so an interrupted benchmark resumes where it stopped."""
    if out.exists():
        done = json.loads(out.read_text())
        if (done["episodes"], done["seed"], done.get("checkpoint_sha256")) == (episodes, seed, digest):
            return done
    result = run_eval([*flags, "--episodes", str(episodes), "--seed", str(seed), "--batch-size", str(batch_size or episodes)])
    result["checkpoint_sha256"] = digest
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result
