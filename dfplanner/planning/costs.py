"""Costs: what a plan should minimize, measured on the unnormalized plan (guidance steers towards less).

A cost is any callable `cost(plan, goal) -> (B,)` where `plan` maps channel names ("action",
"reward", "observation") to tensors of shape (B, steps, dim) (reward: (B, steps)) in env units and
`goal` is the (B, goal_dim) tensor given to the planner (or None). Lower is better. How its gradient
reaches the tokens is the guidance strategy's business (dfplanner.planning.guidance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from dfplanner.errors import DfplannerError

if TYPE_CHECKING:  # importing the costs' names (for the CLI) must not import torch
    import torch

Plan = dict[str, "torch.Tensor"]


class Cost(Protocol):
    def __call__(self, plan: Plan, goal: torch.Tensor | None) -> torch.Tensor: ...


class GoalDistance:
    """Sum over planned steps of the (unsquared) distance of the planned position to the goal.

    Every step counts, so the cost is lowest for a plan that arrives early and stays: any step may be
    the arrival, which is what a sparse "be within r of the goal" reward asks for.
    """

    def __init__(self, position_dims: tuple[int, ...]):
        if not position_dims:
            raise DfplannerError("goal guidance needs position_dims: which observation dimensions the goal is compared with")
        self.position_dims = list(position_dims)

    def __call__(self, plan: Plan, goal: torch.Tensor | None) -> torch.Tensor:
        if goal is None:
            raise DfplannerError("goal guidance needs a goal: pass goal= to reset()")
        if "observation" not in plan:
            raise DfplannerError("goal guidance needs the observation channel in the model's tokens")
        position = plan["observation"][..., self.position_dims]
        return (position - goal[:, None, :]).norm(dim=-1).sum(-1)


# Guards the normalization of a planned quaternion that is all zeros.
QUATERNION_EPS = 1e-8


class Tilt:
    """Sum over planned steps of 1 - the body's up axis z (0 upright, 2 upside down), from the planned
    orientation quaternion (w, x, y, z; normalized here, as a plan's need not be). A legged robot that
    falls over reaches no goal, and the goal distance alone does not see the fall coming."""

    def __init__(self, quaternion_dims: tuple[int, ...]):
        if len(quaternion_dims) != 4:
            raise DfplannerError("the tilt cost (upright_weight > 0) needs upright_dims: the 4 observation dimensions of the body's "
                                 f"quaternion (w, x, y, z), which this env's family gives (AntMaze does); got {tuple(quaternion_dims)!r}")
        self.quaternion_dims = list(quaternion_dims)

    def __call__(self, plan: Plan, goal: torch.Tensor | None) -> torch.Tensor:
        if "observation" not in plan:
            raise DfplannerError("the tilt cost needs the observation channel in the model's tokens")
        w, x, y, z = plan["observation"][..., self.quaternion_dims].unbind(-1)
        up = (w**2 + z**2 - x**2 - y**2) / (w**2 + x**2 + y**2 + z**2).clamp(min=QUATERNION_EPS)
        return (1.0 - up).sum(-1)


class WeightedSum:
    """first + weight * second: a cost with a penalty beside it."""

    def __init__(self, first: Cost, second: Cost, weight: float):
        self.first, self.second, self.weight = first, second, weight

    def __call__(self, plan: Plan, goal: torch.Tensor | None) -> torch.Tensor:
        return self.first(plan, goal) + self.weight * self.second(plan, goal)


class RewardToGo:
    """Minus the predicted reward summed over the plan (needs the reward channel)."""

    def __call__(self, plan: Plan, goal: torch.Tensor | None) -> torch.Tensor:
        if "reward" not in plan:
            raise DfplannerError("reward guidance needs a model trained with the reward channel")
        return -plan["reward"].sum(-1)


COST_NAMES = ("goal", "reward", "none")


def make_cost(spec: str | Cost | None, position_dims: tuple[int, ...] = (), upright_weight: float = 0.0,
              upright_dims: tuple[int, ...] = ()) -> Cost | None:
    """A cost from a name ("goal", "reward"), a callable (used as is) or None / "none" (no guidance); a
    named cost gets `upright_weight` times the tilt cost added when that weight is above 0."""
    if spec is None or spec == "none":
        return None
    if callable(spec):
        return spec
    if spec not in ("goal", "reward"):
        raise DfplannerError(f"unknown guidance cost {spec!r}; choose one of {', '.join(COST_NAMES)} or pass a callable")
    cost = GoalDistance(position_dims) if spec == "goal" else RewardToGo()
    return WeightedSum(cost, Tilt(upright_dims), upright_weight) if upright_weight > 0 else cost
