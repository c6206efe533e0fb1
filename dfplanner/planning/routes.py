"""Routes learned from the offline data: where the dataset has been, and how its own steps connect it.

A goal-distance cost pulls a plan along the straight line to the goal, and in a maze that line ends
behind a wall. The data knows better: every recorded transition is a step somebody took. `DataRoutes`
quantizes the recorded positions into cells (CELL_STEPS median steps wide), links two cells when a transition of one
episode goes from one to the other, and so holds the temporal distance the data itself supports: the
shortest chain of recorded steps (Dijkstra over the graph; each link costs the distance between the two
cells' mean positions, or with `traffic` > 0 that distance weighted by how rarely the data took the
link, below). It is the fixed point of the Bellman backup d(s, g) = min over recorded
s -> s' of |s - s'| + d(s', g) on the quantized states, the tabular form of the hindsight temporal
distance: no maze layout, wall or oracle enters it, and it joins the pieces of a stitch dataset.
Only the cells that all reach one another are kept, so that every goal's nearest cell has a route.

The shortest chain grazes every wall corner the data ever grazed: a path through sparsely visited cells
at the edge of a corridor is as short as any. A point mass does not mind; an ant that grazes a corner
falls over. With `traffic` t > 0 a link costs its length times (median link count / its count)^t, so
a link the data took often is cheap and a rarely taken one dear: routes keep to the lanes the data's
walker kept to (corridor centres) and turn where it turned. t = 0 is the plain shortest chain.

The planner uses it for subgoals: at each decision it aims its cost at the point the data's route from
its position to the goal reaches after `route_lookahead` recorded steps (of the dataset's median
length; the goal itself once the route is shorter than that). The diffusion plan still decides how to
get there. Counting in recorded steps makes the setting carry across mazes: the default 40 steps are
about 1.7 units (two cells) in maze2d's mazes; OGBench's family config uses 20, 4 units (one cell).

Saved beside a checkpoint as NAME.routes.safetensors (tensors only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from dfplanner.utils.atomic import atomic_output
from dfplanner.errors import DfplannerError
from dfplanner.data.offline import OfflineDataset

ROUTES_SUFFIX = ".routes.safetensors"
# A cell spans about this many recorded steps: consecutive steps then link neighbouring cells, and a
# cell stays far smaller than a wall is thick (maze2d: 0.2 of a 1-unit cell; OGBench: 1 of 4 units).
CELL_STEPS = 5


@dataclass
class DataRoutes:
    """The dataset's cells (their mean positions) and the recorded transitions between them."""

    nodes: np.ndarray  # (N, d) float32 mean recorded position in each occupied cell
    sources: np.ndarray  # (E,) int64: a recorded transition went from cell sources[e] ...
    targets: np.ndarray  # (E,) int64: ... to cell targets[e]
    step: float  # the median distance between consecutive recorded positions
    counts: np.ndarray | None = None  # (E,) int64 recorded transitions along each link (None: a routes file made before counts)
    _to_goal: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _backwards: dict[float, csr_matrix] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, positions: np.ndarray, episode_ends: np.ndarray, step: float) -> DataRoutes:
        """From recorded positions (N, d) in time order, episode e ending at row episode_ends[e], whose
        median step is `step`."""
        if not step > 0:
            raise DfplannerError(f"routes need a step length > 0, got {step}")
        keys = np.floor(positions / (CELL_STEPS * step)).astype(np.int64)
        _, node_of = np.unique(keys, axis=0, return_inverse=True)
        node_of = node_of.reshape(-1)
        count = np.bincount(node_of)
        nodes = np.stack([np.bincount(node_of, weights=positions[:, k]) / count for k in range(positions.shape[1])], axis=1)
        within = np.ones(len(positions) - 1, dtype=bool)
        within[np.asarray(episode_ends)[:-1] - 1] = False  # the last step of an episode leads nowhere
        pairs = np.stack([node_of[:-1][within], node_of[1:][within]], axis=1)
        pairs, counts = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0, return_counts=True)
        keep = _largest_strong_component(len(nodes), pairs)
        index = np.cumsum(keep) - 1
        kept = keep[pairs[:, 0]] & keep[pairs[:, 1]]
        pairs = pairs[kept]
        return cls(nodes[keep].astype(np.float32), index[pairs[:, 0]], index[pairs[:, 1]], float(step), counts[kept].astype(np.int64))

    @classmethod
    def from_dataset(cls, dataset: OfflineDataset, position_dims: tuple[int, ...]) -> DataRoutes:
        """The routes of a dataset's positions, in cells of CELL_STEPS times its median recorded step."""
        positions = dataset.observations[:, list(position_dims)].astype(np.float64)
        steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        steps[np.asarray(dataset.episode_ends)[:-1] - 1] = np.nan  # no step between two episodes
        median = float(np.nanmedian(steps)) if np.isfinite(steps).any() else 0.0
        if not median > 0:
            raise DfplannerError(f"{dataset.source or 'the dataset'}: its positions never move, so it has no routes")
        return cls.build(positions, dataset.episode_ends, median)

    def save(self, path: Path) -> None:
        arrays = {"nodes": self.nodes, "sources": self.sources, "targets": self.targets, "step": np.array([self.step])}
        if self.counts is not None:
            arrays["counts"] = self.counts
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}  # safetensors writes the raw buffer
        with atomic_output(Path(path)) as temp:
            save_file(arrays, str(temp))

    @classmethod
    def load(cls, path: Path) -> DataRoutes:
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise DfplannerError(f"{path}: not a routes file ({error})") from None
        missing = sorted({"nodes", "sources", "targets", "step"} - set(arrays))
        if missing:
            raise DfplannerError(f"{path}: routes file lacks {', '.join(missing)}")
        nodes, sources, targets, counts = arrays["nodes"], arrays["sources"], arrays["targets"], arrays.get("counts")
        if (nodes.ndim != 2 or sources.shape != targets.shape or len(sources) and max(sources.max(), targets.max()) >= len(nodes)
                or counts is not None and (counts.shape != sources.shape or len(counts) and counts.min() < 1)):
            raise DfplannerError(f"{path}: routes file is inconsistent (nodes {nodes.shape}, edges {sources.shape} / {targets.shape}"
                                 f"{'' if counts is None else f', counts {counts.shape}'})")
        return cls(nodes, sources.astype(np.int64), targets.astype(np.int64), float(arrays["step"][0]),
                   None if counts is None else counts.astype(np.int64))

    def nearest(self, positions: np.ndarray) -> np.ndarray:
        """The cell whose mean position is nearest each position (B, d)."""
        return np.argmin(((positions[:, None, :] - self.nodes[None]) ** 2).sum(-1), axis=1)

    def check_traffic(self, traffic: float) -> None:
        """A user error, before any episode, for a traffic these routes cannot weigh links by."""
        if traffic != 0 and self.counts is None:
            raise DfplannerError("these routes were made before links were counted, so route_traffic must be 0; "
                                 "remake them with `dfplan routes --checkpoint CHECKPOINT`")

    def link_costs(self, traffic: float) -> np.ndarray:
        """What each link costs a route: its length, times (median count / its count)^traffic."""
        self.check_traffic(traffic)
        lengths = np.linalg.norm(self.nodes[self.sources] - self.nodes[self.targets], axis=1).astype(np.float64)
        if traffic == 0:
            return lengths
        return lengths * (np.median(self.counts) / self.counts) ** traffic

    def _routes_to(self, goal_node: int, traffic: float) -> tuple[np.ndarray, np.ndarray]:
        """Cost from every cell to this one along recorded steps, and each cell's next cell on the way."""
        if traffic not in self._backwards:  # each link reversed
            n = len(self.nodes)
            self._backwards[traffic] = csr_matrix((self.link_costs(traffic), (self.targets, self.sources)), shape=(n, n))
        key = (goal_node, traffic)
        if key not in self._to_goal:
            distance, previous = dijkstra(self._backwards[traffic], indices=goal_node, return_predecessors=True)
            self._to_goal[key] = (distance, previous)  # previous on the reversed graph = next on the route
        return self._to_goal[key]

    def distance(self, positions: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Length of the data's shortest route from each position to its goal (inf where the data never connects them)."""
        starts, ends = self.nearest(positions), self.nearest(goals)
        return np.array([self._routes_to(int(end), 0.0)[0][start] for start, end in zip(starts, ends)])

    def subgoals(self, positions: np.ndarray, goals: np.ndarray, steps: float, traffic: float = 0.0) -> np.ndarray:
        """For each position (B, d), the point `steps` recorded steps along the data's route to its goal
        (the cheapest at this `traffic`): the first cell on the route at least that far along, or the
        goal itself once the shortest route is that short (or there is none). Within reach the goal
        wins even at traffic > 0: the most travelled lane near a goal may lead away from it first."""
        lookahead = steps * self.step
        out = np.array(goals, dtype=np.float32, copy=True)
        starts, ends = self.nearest(positions), self.nearest(goals)
        for b, (node, end) in enumerate(zip(starts, ends)):
            shortest = self._routes_to(int(end), 0.0)[0][node]
            if not np.isfinite(shortest) or shortest <= lookahead:
                continue
            following = self._routes_to(int(end), float(traffic))[1]
            travelled = 0.0
            while travelled < lookahead and node != end:
                travelled += float(np.linalg.norm(self.nodes[following[node]] - self.nodes[node]))
                node = following[node]
            out[b] = self.nodes[node]
        return out


def _largest_strong_component(n: int, pairs: np.ndarray) -> np.ndarray:
    """Which cells lie in the largest set whose cells all reach one another. The others (a cell only
    ever left, as at an episode's first step, or only ever entered) would be goals no route reaches."""
    graph = csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=True, connection="strong")
    return labels == np.bincount(labels).argmax()


def routes_for(dataset: OfflineDataset, env_id: str | None) -> DataRoutes | None:
    """The dataset's routes if its env has positions to route between (a maze), else None."""
    from dfplanner.envs import planner_facts

    dims = planner_facts(env_id).get("position_dims")
    return DataRoutes.from_dataset(dataset, dims) if dims else None


def routes_path(checkpoint_json: Path) -> Path:
    """Where a checkpoint's routes live: NAME.routes.safetensors beside NAME.json."""
    return Path(checkpoint_json).with_suffix(ROUTES_SUFFIX)
