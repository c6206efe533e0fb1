"""Which torch device to run on: CUDA when there is a GPU, the CPU otherwise, and a clear error for the rest."""

from __future__ import annotations

import torch

from dfplanner.errors import DfplannerError

DEVICES = ("auto", "cpu", "cuda")
DEVICE_TYPES = ("cpu", "cuda", "mps")  # what the planner and training run on (meta, xla, ... do not)


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DfplannerError(f"--device {device} requested but no CUDA GPU is available; use --device cpu or auto")
    try:
        resolved = torch.device(device)
        usable = resolved.type in DEVICE_TYPES and torch.empty(1, device=resolved) is not None  # mps off a Mac fails here
    except (RuntimeError, AssertionError):  # an unknown name; a device type torch knows but this machine lacks
        usable = False
    if not usable:
        raise DfplannerError(f"--device {device} is not usable on this machine; use {', '.join(DEVICES)} (or cuda:N)")
    return resolved
