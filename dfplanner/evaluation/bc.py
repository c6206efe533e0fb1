"""The model-free baseline beside the planner: goal-conditioned behaviour cloning aimed at the same
route subgoals the planner's cost aims at (`dfplan eval --policy bc`).

Its head (dfplanner.planning.action_head, kind "bc") is fitted on the checkpoint's own training data
(`dfplan head train --kind bc`) and reads the position `route_lookahead` recorded steps along the data's
routes to the goal (the checkpoint's `route_lookahead` and `route_traffic`, so both policies chase the
same points, unless `dfplan eval --policy bc` is given its own); no denoiser and no plan are involved,
so the difference between the two is what the diffusion plan adds.
"""

from __future__ import annotations

import numpy as np

from dfplanner.errors import DfplannerError
from dfplanner.planning.settings import PlannerSettings
from dfplanner.training.checkpoint import TrainedModel


class BCPolicy:
    name = "bc"

    def __init__(self, trained: TrainedModel, settings: PlannerSettings):
        self.head = trained.heads.get("bc")
        if self.head is None:
            raise DfplannerError("--policy bc needs a behaviour-cloning head beside the checkpoint: "
                                 "dfplan head train --checkpoint CHECKPOINT --kind bc")
        if settings.route_lookahead > 0 and trained.routes is None:
            raise DfplannerError("--policy bc aims at the checkpoint's routes, and it has none (dfplan routes --checkpoint ...)")
        if trained.routes is not None:
            trained.routes.check_traffic(settings.route_traffic)
        self.routes, self.lookahead, self.traffic = trained.routes, settings.route_lookahead, settings.route_traffic
        self.dims = list(self.head.spec.target_dims)

    def reset(self, observations: np.ndarray, targets: np.ndarray | None) -> None:
        if targets is None:
            raise DfplannerError("--policy bc is goal-conditioned; this env has no goal")
        self.goals = np.asarray(targets, dtype=np.float64)

    def act(self, observations: np.ndarray) -> np.ndarray:
        positions = observations[:, self.dims].astype(np.float64)
        aims = self.routes.subgoals(positions, self.goals, self.lookahead, self.traffic) if self.lookahead > 0 else self.goals
        return self.head.act(observations, aims)
