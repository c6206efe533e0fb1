"""Routes from the data's own transitions: they go around walls, never across episodes, and survive a file."""

import json

import numpy as np
import pytest

from dfplanner.cli import main
from dfplanner.errors import DfplannerError
from dfplanner.data.offline import OfflineDataset
from dfplanner.planning.routes import DataRoutes, routes_path
from tests.conftest import tiny_trained_model


def u_walk(step: float = 0.1) -> np.ndarray:
    """A walk up the left arm of a U (x = 0, y 10 -> 0), across the bottom, and up the right arm (x = 4):
    the arms' tops are 4 apart, with a wall between them the walk never crosses."""
    down = np.stack([np.zeros(101), np.linspace(10, 0, 101)], 1)
    across = np.stack([np.linspace(0, 4, 41), np.zeros(41)], 1)[1:]
    up = np.stack([np.full(101, 4.0), np.linspace(0, 10, 101)], 1)[1:]
    return np.concatenate([down, across, up]).astype(np.float32)


def dataset(positions: np.ndarray, episode_ends: list[int]) -> OfflineDataset:
    n = len(positions)
    return OfflineDataset(positions, np.zeros((n, 2), np.float32), np.zeros(n, np.float32), np.asarray(episode_ends))


def test_route_goes_around_the_wall_not_through_it():
    walk = u_walk()
    routes = DataRoutes.from_dataset(dataset(np.concatenate([walk, walk[::-1]]), [len(walk), 2 * len(walk)]), (0, 1))
    start, goal = np.array([[0.0, 10.0]]), np.array([[4.0, 10.0]])
    assert routes.distance(start, goal)[0] == pytest.approx(24.0, abs=1.5)  # down 10, across 4, up 10
    assert routes.step == pytest.approx(0.1)
    subgoal = routes.subgoals(start, goal, steps=50)[0]
    assert abs(subgoal[0]) < 0.5 and 4.0 < subgoal[1] < 6.0  # 5 down the left arm, not towards the goal
    near = np.array([[4.0, 7.0]])
    assert np.allclose(routes.subgoals(near, goal, steps=50), goal)  # within reach: the goal itself


def test_a_cell_no_route_reaches_is_dropped():
    """A position seen only as an episode's first step is left but never entered: no route could end there."""
    walk = u_walk()
    stray = np.array([[0.0, 12.0]], np.float32)  # the first step of an episode that walks into the U
    data = dataset(np.concatenate([walk, walk[::-1], stray, walk[:1]]), [len(walk), 2 * len(walk), 2 * len(walk) + 2])
    routes = DataRoutes.from_dataset(data, (0, 1))
    assert np.min(np.linalg.norm(routes.nodes - stray, axis=1)) > 1.0
    assert np.isfinite(routes.distance(np.array([[4.0, 10.0]]), stray)[0])  # the nearest cell that has a route


def test_routes_never_join_two_episodes():
    """One episode ends at the left arm's top, the next starts at the right arm's: that jump across the
    wall is not a transition, so the route between the two stays the long way round."""
    there_and_back = np.concatenate([u_walk(), u_walk()[::-1]])
    data = dataset(np.concatenate([there_and_back, there_and_back[::-1]]), [len(there_and_back), 2 * len(there_and_back)])
    routes = DataRoutes.from_dataset(data, (0, 1))
    assert routes.distance(np.array([[0.0, 10.0]]), np.array([[4.0, 10.0]]))[0] == pytest.approx(24.0, abs=1.5)


def two_lanes() -> tuple[OfflineDataset, np.ndarray, np.ndarray]:
    """From (0, 0) to (4, 0): straight along y = 0 once, and 20 times round by y = 2 (twice as long);
    then once back round. The shortest route is the straight lane, the most travelled the detour."""
    straight = np.stack([np.linspace(0, 4, 41), np.zeros(41)], 1)
    up = np.stack([np.zeros(21), np.linspace(0, 2, 21)], 1)
    across = np.stack([np.linspace(0, 4, 41), np.full(41, 2.0)], 1)[1:]
    down = np.stack([np.full(21, 4.0), np.linspace(2, 0, 21)], 1)[1:]
    detour = np.concatenate([up, across, down])
    episodes = [straight] + [detour] * 20 + [detour[::-1]]
    data = dataset(np.concatenate(episodes).astype(np.float32), list(np.cumsum([len(e) for e in episodes])))
    return data, np.array([[0.0, 0.0]]), np.array([[4.0, 0.0]])


def test_route_traffic_keeps_to_the_lane_the_data_took_most():
    data, start, goal = two_lanes()
    routes = DataRoutes.from_dataset(data, (0, 1))
    shortest = routes.subgoals(start, goal, steps=10)[0]
    assert shortest[0] > 0.8 and abs(shortest[1]) < 0.3  # a unit along the straight lane
    travelled = routes.subgoals(start, goal, steps=10, traffic=1.0)[0]
    assert abs(travelled[0]) < 0.3 and travelled[1] > 0.8  # a unit up the detour
    assert routes.distance(start, goal)[0] == pytest.approx(4.0, abs=0.6)  # distance stays the shortest route's length


def test_routes_file_round_trip_and_bad_files(tmp_path):
    walk = np.concatenate([u_walk(), u_walk()[::-1]])
    routes = DataRoutes.from_dataset(dataset(walk, [len(walk)]), (0, 1))
    routes.save(tmp_path / "r.routes.safetensors")
    loaded = DataRoutes.load(tmp_path / "r.routes.safetensors")
    for key in ("nodes", "sources", "targets", "counts"):
        assert np.array_equal(getattr(loaded, key), getattr(routes, key))
    start, goal = walk[:1], walk[-1:]
    assert loaded.step == routes.step
    assert np.allclose(loaded.subgoals(start, goal, 30), routes.subgoals(start, goal, 30))
    (tmp_path / "bad.routes.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(DfplannerError, match="bad.routes.safetensors: not a routes file"):
        DataRoutes.load(tmp_path / "bad.routes.safetensors")
    uncounted = DataRoutes(routes.nodes, routes.sources, routes.targets, routes.step)  # a file made before links were counted
    uncounted.save(tmp_path / "old.routes.safetensors")
    old = DataRoutes.load(tmp_path / "old.routes.safetensors")
    assert np.allclose(old.subgoals(start, goal, 30), routes.subgoals(start, goal, 30))
    with pytest.raises(DfplannerError, match="route_traffic must be 0"):
        old.subgoals(start, walk[len(walk) // 2][None], 30, traffic=1.0)


def test_a_dataset_that_never_moves_has_no_routes():
    still = np.zeros((20, 2), np.float32)
    with pytest.raises(DfplannerError, match="never move"):
        DataRoutes.from_dataset(dataset(still, [20]), (0, 1))


def test_a_checkpoint_without_routes_warns_and_aims_at_the_goal():
    from dfplanner.planning.planner import DiffusionForcingPlanner
    from dfplanner.planning.settings import PlannerSettings

    trained = tiny_trained_model()
    settings = PlannerSettings(position_dims=(0, 1), velocity_dims=(2, 3))
    with pytest.warns(UserWarning, match="dfplan routes"):
        DiffusionForcingPlanner(trained, settings)


def test_routes_command_writes_the_checkpoints_routes(tmp_path):
    """`dfplan routes` rebuilds a checkpoint's routes from the data it names; a shipped maze's routes
    load with its checkpoint."""
    from dfplanner.training.checkpoint import load_trained_model
    from dfplanner.evaluation.pretrained import shipped_checkpoint

    assert load_trained_model(shipped_checkpoint("maze2d-umaze-v1")).routes is not None
    walk = np.concatenate([u_walk(), u_walk()[::-1]])
    data = tmp_path / "walk.npz"
    np.savez(data, observations=walk, actions=np.zeros((len(walk), 2), np.float32),
             terminals=np.r_[np.zeros(len(walk) - 1), 1.0].astype(bool))
    trained = tiny_trained_model(obs_dim=2, metadata={"env_id": "pointmaze-medium-navigate-v0", "dataset": str(data)})
    trained.save(tmp_path / "model")
    assert main(["routes", "--checkpoint", str(tmp_path / "model.json")]) == 0
    routes = DataRoutes.load(routes_path(tmp_path / "model.json"))
    assert len(routes.nodes) > 10 and np.isfinite(routes.distance(walk[:1], walk[-1:])[0])


def test_routed_planner_solves_the_task_the_straight_line_never_did(tmp_path):
    """OGBench large-navigate task 2: the goal lies behind walls from the start; guided plans aimed
    straight at it solved it in none of 60 episodes (results/ogbench), the shipped routed planner does."""
    out = tmp_path / "task2.json"
    args = ["eval", "--env", "pointmaze-large-navigate-v0", "--task", "2", "--episodes", "2", "--seed", "3", "--json", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["success_rate"] == 1.0
