import numpy as np
import pytest

from dfplanner.envs import MAZES, maze_spec
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.envs.oracle import WaypointExpert, next_cell_table


def bfs_distances(walls, target):
    distance = {tuple(target): 0}
    frontier = [tuple(target)]
    while frontier:
        nxt = []
        for r, c in frontier:
            for cell in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if not walls[cell] and cell not in distance:
                    distance[cell] = distance[(r, c)] + 1
                    nxt.append(cell)
        frontier = nxt
    return distance


@pytest.mark.parametrize("env_id", list(MAZES))
def test_next_cell_table_follows_shortest_paths(env_id):
    maze = MAZES[env_id]
    cells = [tuple(c) for c in maze.free_cells]
    table = next_cell_table(maze)
    for t, target in enumerate(cells):
        distance = bfs_distances(maze.walls, target)
        for c, cell in enumerate(cells):
            step = cells[table[t, c]]
            if cell == target:
                assert step == target
            else:  # a 4-neighbour one step closer to the target
                assert abs(step[0] - cell[0]) + abs(step[1] - cell[1]) == 1
                assert distance[step] == distance[cell] - 1


def test_batched_actions_equal_single_actions():
    maze = maze_spec("maze2d-large")
    expert = WaypointExpert(maze)
    rng = np.random.default_rng(0)
    targets = maze.free_cells[rng.integers(len(maze.free_cells), size=8)] + rng.uniform(-0.1, 0.1, (8, 2))
    positions = maze.free_cells[rng.integers(len(maze.free_cells), size=8)] + rng.uniform(-0.3, 0.1, (8, 2))
    velocities = rng.normal(size=(8, 2))
    expert.set_targets(targets)
    batched = expert.act(positions, velocities)
    assert np.abs(batched).max() <= 1.0
    for i in range(8):
        expert.set_targets(targets[i : i + 1])
        np.testing.assert_array_equal(expert.act(positions[i : i + 1], velocities[i : i + 1])[0], batched[i])


def test_path_walks_neighbouring_cells_to_the_target_and_stays():
    maze = maze_spec("maze2d-large")
    expert = WaypointExpert(maze)
    start, target = np.array([[1.0, 1.0]]), np.array([[7.1, 10.0]])  # opposite corners of the large maze
    expert.set_targets(target)
    distance = bfs_distances(maze.walls, (7, 10))[(1, 1)]
    path = expert.path(start, distance + 3)[0]
    steps = np.abs(np.diff(np.concatenate([start, path]), axis=0)).sum(axis=1)
    np.testing.assert_allclose(steps[: distance - 1], 1.0)  # one cell at a time, never through a wall
    assert not any(maze.walls[tuple(cell)] for cell in np.rint(path[: distance - 1]).astype(int))
    np.testing.assert_allclose(path[distance - 1 :], np.repeat(target, 4, axis=0))  # the target, then it again


def test_pd_law_in_the_target_cell():
    expert = WaypointExpert(maze_spec("maze2d-umaze"))
    expert.set_targets(np.array([[1.05, 1.0]]))
    action = expert.act(np.array([[1.0, 1.02]]), np.array([[0.1, -0.1]]))
    np.testing.assert_allclose(action, [[10 * 0.05 - 0.1, 10 * -0.02 + 0.1]])  # a = 10 (target - p) - v


@pytest.mark.parametrize("name", ["maze2d-umaze", "maze2d-large"])
def test_oracle_reaches_the_target_and_stays(name):
    envs = [Maze2dEnv(name, multi_goal=True) for _ in range(6)]
    observations = np.stack([env.reset(seed=seed)[0] for seed, env in enumerate(envs)])
    expert = WaypointExpert(envs[0].maze)
    expert.set_targets(np.stack([env.target for env in envs]))
    rewards = np.zeros((envs[0].max_episode_steps, len(envs)))
    for t in range(len(rewards)):
        actions = expert.act(observations[:, :2].astype(np.float64), observations[:, 2:].astype(np.float64))
        for i, env in enumerate(envs):
            observations[i], rewards[t, i], *_ = env.step(actions[i])
    first = rewards.argmax(axis=0)
    assert rewards.any(axis=0).all()
    assert all(rewards[f:, i].all() for i, f in enumerate(first))  # never leaves once there
    assert expert.reached(observations[:, :2].astype(np.float64)).all()
