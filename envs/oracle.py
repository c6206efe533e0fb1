"""The scripted maze2d expert: D4RL's waypoint controller (``d4rl/pointmaze/waypoint_controller.py``), batched.

Every step the waypoint is the next cell on a shortest 4-neighbour path from the cell the particle stands
in to the target's cell, or the target itself once in the target's cell (so the expert reaches the
target and stays on it). It is steered to with D4RL's PD law ``a = clip(10 (w - p) - 1 v, -1, 1)``.
Shortest paths come from one BFS per target cell, done once per maze: a step is a table lookup.

One deliberate difference: D4RL plans its waypoint list once per target and advances along it only on
coming within 0.1 of each waypoint, which slows the particle at every cell; re-reading the current cell
every step arrives sooner (both measured on the same episodes by benchmarks/d4rl_expert.py,
results/d4rl_expert.md). The 0.1 threshold remains D4RL's "target
reached" test (``reached``), which makes the data generator pick a new target.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from dfplanner.envs.layouts import MazeSpec, cell_to_pos, pos_to_cell

P_GAIN = 10.0
D_GAIN = -1.0  # D4RL's sign convention: a = P (w - p) + D v
WAYPOINT_THRESHOLD = 0.1
NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def next_cell_table(maze: MazeSpec) -> np.ndarray:
    """(n, n) int64: entry [t, c] is the free-cell index one step from c on a shortest path to t (t at t)."""
    cells = [tuple(cell) for cell in maze.free_cells]
    index = {cell: i for i, cell in enumerate(cells)}
    table = np.full((len(cells), len(cells)), -1, dtype=np.int64)
    for t, target in enumerate(cells):
        table[t, t] = t
        queue = deque([target])
        while queue:  # BFS outwards from the target: a newly found cell steps to the cell it was found from
            r, c = queue.popleft()
            for dr, dc in NEIGHBOURS:
                neighbour = index.get((r + dr, c + dc))
                if neighbour is not None and table[t, neighbour] < 0:
                    table[t, neighbour] = index[(r, c)]
                    queue.append(cells[neighbour])
    return table


class WaypointExpert:
    """Batched waypoint controller: ``set_targets`` once per target, then ``act`` every step."""

    def __init__(self, maze: MazeSpec):
        self.maze = maze
        self.cells = cell_to_pos(maze.free_cells)
        self.next_cell = next_cell_table(maze)
        self.cell_index = np.full(maze.walls.shape, -1, dtype=np.int64)
        self.cell_index[tuple(maze.free_cells.T)] = np.arange(len(maze.free_cells))

    def set_targets(self, targets: np.ndarray) -> None:
        """(B, 2) targets, each inside a free cell."""
        self.targets = np.array(targets, dtype=np.float64)
        self.target_index = self._index(self.targets)

    def act(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """(B, 2) actions in [-1, 1] for particles at positions/velocities (B, 2)."""
        return np.clip(P_GAIN * (self.path(positions, 1)[:, 0] - positions) + D_GAIN * velocities, -1.0, 1.0)

    def path(self, positions: np.ndarray, waypoints: int) -> np.ndarray:
        """(B, waypoints, 2): the next cells' centres on a shortest path from each position, the target
        itself in place of the target's cell (repeated once it is reached)."""
        cell, points = self._index(positions), []
        for _ in range(waypoints):
            cell = self.next_cell[self.target_index, cell]
            points.append(np.where((cell == self.target_index)[:, None], self.targets, self.cells[cell]))
        return np.stack(points, axis=1)

    def reached(self, positions: np.ndarray) -> np.ndarray:
        """(B,) bool: within the waypoint threshold of the target (D4RL's "task solved")."""
        return np.linalg.norm(positions - self.targets, axis=1) < WAYPOINT_THRESHOLD

    def _index(self, positions: np.ndarray) -> np.ndarray:
        rows, cols = pos_to_cell(positions).T
        return self.cell_index[rows, cols]
