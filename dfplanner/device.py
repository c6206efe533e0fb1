"""Which torch device to run on: CUDA when there is a GPU, the CPU otherwise, and a clear error for the rest."""

from __future__ import annotations

import torch

from dfplanner.errors import DfplannerError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DfplannerError(f"--device {device} requested but no CUDA GPU is available; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise DfplannerError(f"unknown device {device!r}; use {', '.join(DEVICES)} (or cuda:N)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise DfplannerError(f"unknown device {device!r}; use {', '.join(DEVICES)} (or cuda:N)") from None
