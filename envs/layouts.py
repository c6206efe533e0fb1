"""The three D4RL maze2d mazes: layouts, episode lengths, reference scores and grid geometry.

Coordinates are D4RL's: a position is qpos = (x, y) and qpos (r, c) lies in maze cell (row r, column c).
The MJCF puts the particle body at (1.2, 1.2) and the wall box of cell (r, c) at (r + 1, c + 1), so
qpos (r, c) sits ``PARTICLE_OFFSET`` = 0.2 past the cell's geometric centre along both axes, and
cell r spans qpos [r - 0.7, r + 0.3). Keeping this frame lets real D4RL files work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dfplanner.errors import DfplannerError

WALL, FREE, GOAL = "#", "O", "G"
# Where the observation [x, y, vx, vy] holds the position and the velocity.
POSITION_DIMS, VELOCITY_DIMS = (0, 1), (2, 3)
PARTICLE_OFFSET = 0.2  # particle body at (1.2, 1.2) versus wall boxes at (r + 1, c + 1)
HALF_CELL = 0.5


@dataclass(frozen=True)
class MazeSpec:
    """One D4RL maze2d task: what the env, the expert, the generator and the scorer share."""

    name: str  # short name, e.g. "maze2d-large"
    rows: tuple[str, ...]
    max_episode_steps: int
    ref_min_score: float  # D4RL's random-policy return
    ref_max_score: float  # D4RL's expert return
    dataset_steps: int  # size of the D4RL dataset

    @property
    def env_id(self) -> str:
        return f"{self.name}-v1"

    @cached_property
    def walls(self) -> np.ndarray:
        """(rows, cols) bool array, True where a wall box stands."""
        return np.array([[tile == WALL for tile in row] for row in self.rows])

    @cached_property
    def free_cells(self) -> np.ndarray:
        """(n, 2) int64 (row, col) of every non-wall cell, goal included, in row-major order.

        D4RL resets and draws random targets uniformly over exactly these cells."""
        return np.argwhere(~self.walls)

    @cached_property
    def goal_cell(self) -> tuple[int, int]:
        (row,) = [r for r, line in enumerate(self.rows) if GOAL in line]
        return row, self.rows[row].index(GOAL)

    @property
    def goal(self) -> np.ndarray:
        """The fixed evaluation target: the 'G' cell's qpos, no noise."""
        return cell_to_pos(np.array(self.goal_cell))

    def get_normalized_score(self, total_return: float) -> float:
        """D4RL's normalization: 0 = random policy, 100 = D4RL's expert."""
        return 100.0 * (total_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


def cell_to_pos(cells: np.ndarray) -> np.ndarray:
    """(..., 2) int cells -> (..., 2) float64 qpos the particle has when it sits "on" the cell."""
    return np.asarray(cells, dtype=np.float64)


def pos_to_cell(pos: np.ndarray) -> np.ndarray:
    """(..., 2) qpos -> (..., 2) int64 cell that physically contains the point (not round(pos))."""
    return np.floor(np.asarray(pos) + HALF_CELL + PARTICLE_OFFSET).astype(np.int64)


_MAZE_LIST = [
    MazeSpec(
        name="maze2d-umaze",
        rows=("#####", "#GOO#", "###O#", "#OOO#", "#####"),
        max_episode_steps=300,
        ref_min_score=23.85,
        ref_max_score=161.86,
        dataset_steps=1_000_000,
    ),
    MazeSpec(
        name="maze2d-medium",
        rows=("########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#", "#OOO#OG#", "########"),
        max_episode_steps=600,
        ref_min_score=13.13,
        ref_max_score=277.39,
        dataset_steps=2_000_000,
    ),
    MazeSpec(
        name="maze2d-large",
        rows=(
            "############",
            "#OOOO#OOOOO#",
            "#O##O#O#O#O#",
            "#OOOOOO#OOO#",
            "#O####O###O#",
            "#OO#O#OOOOO#",
            "##O#O#O#O###",
            "#OO#OOO#OGO#",
            "############",
        ),
        max_episode_steps=800,
        ref_min_score=6.7,
        ref_max_score=273.99,
        dataset_steps=4_000_000,
    ),
]
MAZES: dict[str, MazeSpec] = {spec.env_id: spec for spec in _MAZE_LIST}


def resolve_env_id(name: str) -> str:
    """'maze2d-large' or 'maze2d-large-v1' -> 'maze2d-large-v1'; anything else is a user error."""
    for spec in _MAZE_LIST:
        if name in (spec.name, spec.env_id):
            return spec.env_id
    valid = ", ".join(f"{spec.name} ({spec.env_id})" for spec in _MAZE_LIST)
    raise DfplannerError(f"unknown environment {name!r}; valid: {valid}")


def maze_spec(name: str) -> MazeSpec:
    """The MazeSpec of a short or full env name."""
    return MAZES[resolve_env_id(name)]
