"""``minari:ID``: the env a local Minari dataset recovers (Minari's ``recover_environment(eval_env=True)``,
the dataset's own env when it names no evaluation env), evaluated on the dataset's own episode length.

A goal-conditioned gymnasium-robotics PointMaze env is a maze2d maze seen in D4RL's frame
(dfplanner.envs.pointmaze): for every other purpose (the checkpoint, the oracle, the picture) it belongs
to the maze2d family. Any other env (e.g. HalfCheetah-v5 recorded with ``minari.DataCollector``) is
what the registered-gymnasium family evaluates: its own episodes and returns (D4RL's normalized score for
its locomotion envs), reward guidance.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gymnasium as gym

from dfplanner.envs.family import EnvFamily, EvalTask
from dfplanner.envs.pointmaze import PointMazeInD4rlFrame, is_goal_maze, pointmaze_maze
from dfplanner.envs.registered import FAMILY as REGISTERED, d4rl_normalizer, flat_spaces
from dfplanner.errors import DfplannerError

MINARI_PREFIX = "minari:"


def recoverer(dataset, where: str) -> Callable[[], gym.Env]:
    """A factory of the dataset's evaluation envs, or a one-line error naming what is missing."""
    try:
        with warnings.catch_warnings():  # it warns about its Adroit envs on import
            warnings.simplefilter("ignore")
            import gymnasium_robotics  # noqa: F401  (registers PointMaze and the other robotics envs)
    except ImportError:
        gymnasium_robotics = None

    def recover() -> gym.Env:
        with warnings.catch_warnings():  # minari warns about requirements and a missing evaluation env
            warnings.simplefilter("ignore")
            try:
                return dataset.recover_environment(eval_env=True)
            except Exception as error:  # gymnasium raises many types for an env it cannot make
                extra = "" if gymnasium_robotics else " (a robotics env needs the optional gymnasium-robotics: pip install 'dfplanner[robotics]')"
                raise DfplannerError(f"{where}: cannot recover its env: {type(error).__name__}: {error}{extra}") from None

    return recover


class MinariFamily(EnvFamily):
    """``minari:ID``: the env its local dataset recovers, a PointMaze maze or any flat-box gymnasium env."""

    name = "minari"
    names = "minari:ID (the env its local Minari dataset recovers)"

    def recognises(self, name: str) -> bool:
        return name.startswith(MINARI_PREFIX)

    def env_id(self, name: str) -> str:
        return self.eval_task(name).env_id

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        from dfplanner.data.datasets import open_minari
        from dfplanner.envs.maze2d import FAMILY as MAZE2D

        if task is not None:
            raise DfplannerError(f"--task K picks one of OGBench's evaluation tasks; {name} has none")
        recover = recoverer(open_minari(name.removeprefix(MINARI_PREFIX)), name)
        probe = recover()
        spec = probe.spec
        probe.close()
        if spec is None or spec.max_episode_steps is None:
            raise DfplannerError(f"{name}: its env spec has no max_episode_steps, so episodes have no length")
        if is_goal_maze(probe.observation_space):
            if multi_goal:
                raise DfplannerError(f"{name}: --multi-goal is for maze2d; a PointMaze env draws its own goal at every reset")
            maze = pointmaze_maze(spec, name)
            return EvalTask(name, maze.env_id, MAZE2D, lambda: PointMazeInD4rlFrame(recover(), maze), spec.max_episode_steps, multi_goal=True)
        if multi_goal:
            raise DfplannerError(f"{name}: --multi-goal is for maze2d; {spec.id} has no goal")
        flat_spaces(probe, name)
        return EvalTask(name, spec.id, REGISTERED, recover, spec.max_episode_steps, multi_goal=False,
                        normalize=d4rl_normalizer(spec.id), has_goal=False)

    def planner_facts(self, env_id: str) -> dict:
        """What the family of the recovered env knows of it."""
        task = self.eval_task(env_id)
        return task.family.planner_facts(task.env_id)


FAMILY = MinariFamily()
