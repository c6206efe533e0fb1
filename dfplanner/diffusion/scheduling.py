"""Scheduling matrices: which noise level every token must reach after each sampling row.

A matrix has shape (rows, horizon). Row 0 is where sampling starts (every token pure noise), the last
row is all zeros (every token clean), and each column never increases from top to bottom. Values are
diffusion levels in {0..K}. Matrices are built in "sampling steps" s in {0..S} (S = number of
denoising steps a token takes) and mapped to levels k = round(s * K / S), so S controls speed and K
the model's training discretization independently.
"""

from __future__ import annotations

import numpy as np

from dfplanner.errors import DfplannerError

SCHEDULES = ("pyramid", "full_sequence", "autoregressive", "trapezoid")


def _from_offsets(offsets: np.ndarray, steps: int, num_levels: int) -> np.ndarray:
    """Staircase matrix where token t starts denoising offsets[t] rows after the first."""
    rows = steps + int(np.ceil(offsets.max())) + 1
    m = np.arange(rows)[:, None]
    s = np.clip(steps + np.ceil(offsets)[None, :] - m, 0, steps)
    return np.rint(s * num_levels / steps).astype(np.int64)


def pyramid(horizon: int, steps: int, num_levels: int, uncertainty: float = 1.0) -> np.ndarray:
    """Near tokens become clean first; token t starts t*uncertainty rows late (0: full-sequence)."""
    if uncertainty < 0:
        raise DfplannerError(f"uncertainty scale must be >= 0, got {uncertainty}")
    return _from_offsets(np.arange(horizon) * float(uncertainty), steps, num_levels)


def full_sequence(horizon: int, steps: int, num_levels: int) -> np.ndarray:
    """Classic diffusion: all tokens share one level per row."""
    return pyramid(horizon, steps, num_levels, uncertainty=0.0)


def autoregressive(horizon: int, steps: int, num_levels: int) -> np.ndarray:
    """One token is denoised completely before the next one starts."""
    return pyramid(horizon, steps, num_levels, uncertainty=float(steps))


def trapezoid(horizon: int, steps: int, num_levels: int, uncertainty: float = 1.0) -> np.ndarray:
    """Both ends become clean first, the middle last (useful when the last token is a known goal)."""
    t = np.arange(horizon)
    return _from_offsets(np.minimum(t, horizon - 1 - t) * float(uncertainty), steps, num_levels)


def build_schedule(name: str, horizon: int, steps: int, num_levels: int, uncertainty: float = 1.0) -> np.ndarray:
    """A named scheduling matrix."""
    if steps < 1 or horizon < 1:
        raise DfplannerError(f"schedule needs steps >= 1 and horizon >= 1, got steps={steps}, horizon={horizon}")
    if name == "pyramid":
        return pyramid(horizon, steps, num_levels, uncertainty)
    if name == "full_sequence":
        return full_sequence(horizon, steps, num_levels)
    if name == "autoregressive":
        return autoregressive(horizon, steps, num_levels)
    if name == "trapezoid":
        return trapezoid(horizon, steps, num_levels, uncertainty)
    raise DfplannerError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)} or pass a matrix")


def rolling_ladder(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a from-noise matrix where token 0 first becomes clean: (warm-up rows, ladder).

    A rolling planner runs the warm-up once, executes token 0, and from then on keeps its plan on the
    ladder: the levels every token holds at the moment the first one is clean.
    """
    row = int(np.argmax(matrix[:, 0] == 0))
    return matrix[: row + 1], matrix[row]


def rolling_transition(levels: np.ndarray, ladder: np.ndarray, shift: int, steps: int, num_levels: int) -> np.ndarray:
    """Rows that bring a plan whose tokens sit at `levels` back onto `ladder` after `shift` tokens ran.

    The plan moves `shift` tokens up, fresh noise (level K) fills the end, and the rows are spaced so
    no token drops more than one sampling step (K / steps levels) per row: on a pyramid ladder that is
    one row per decision, the whole point of rolling.
    """
    horizon = len(ladder)
    start = np.concatenate([levels[shift:], np.full(max(0, horizon - len(levels) + shift), num_levels)])[:horizon]
    drop = start - ladder
    if drop.min() < 0:
        raise DfplannerError("a rolling plan needs a ladder whose levels never fall along the horizon (e.g. pyramid)")
    rows = max(1, int(np.ceil(drop.max() * steps / num_levels)))
    remaining = (rows - np.arange(rows + 1))[:, None] / rows
    return (ladder + np.rint(drop * remaining)).astype(np.int64)


def validate_schedule(matrix: np.ndarray, horizon: int, num_levels: int) -> np.ndarray:
    """Check a user-supplied matrix and return it as int64; raise DfplannerError saying what is wrong."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] != horizon or matrix.shape[0] < 2:
        raise DfplannerError(
            f"scheduling matrix must have shape (rows >= 2, horizon={horizon}), got {matrix.shape}"
        )
    if not np.issubdtype(matrix.dtype, np.number) or not np.all(np.isfinite(matrix)):
        raise DfplannerError("scheduling matrix must hold finite numbers")
    if np.any(matrix != np.round(matrix)):
        raise DfplannerError("scheduling matrix must hold integer noise levels")
    matrix = matrix.astype(np.int64)
    if matrix.min() < 0 or matrix.max() > num_levels:
        raise DfplannerError(
            f"scheduling matrix values must lie in [0, {num_levels}], got [{matrix.min()}, {matrix.max()}]"
        )
    rising = np.argwhere(np.diff(matrix, axis=0) > 0)
    if len(rising):
        row, col = rising[0]
        raise DfplannerError(
            f"scheduling matrix column {col} increases from row {row} to row {row + 1} "
            f"({matrix[row, col]} -> {matrix[row + 1, col]}); levels may only stay or fall"
        )
    if np.any(matrix[-1] != 0):
        raise DfplannerError("scheduling matrix last row must be all zeros (every token clean)")
    return matrix
