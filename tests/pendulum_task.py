"""Pendulum-v1 data from a noisy swing-up controller, as a D4RL-format file: a registered gymnasium
env without a goal, for tests and benchmarks/pendulum.py."""

from pathlib import Path

import gymnasium as gym
import numpy as np

from conftest import write_hdf5

ENV = "Pendulum-v1"


def swing_up(observation: np.ndarray) -> float:
    """Energy pumping far from the top, PD near it: a return of about -140 per episode."""
    cos, sin, velocity = observation
    if cos > 0.8:
        return float(np.clip(-10 * np.arctan2(sin, cos) - 2 * velocity, -2, 2))
    energy = velocity**2 / 6 + 5 * (cos - 1)
    return 2.0 * np.sign(-velocity * energy + 1e-6)


def recorded(path: Path, episodes: int = 10, noise: float = 1.0, env_id: str | None = ENV, seed: int = 0) -> Path:
    """`episodes` episodes of the controller plus N(0, noise) torque, clipped to Pendulum's [-2, 2]."""
    env, rng = gym.make(ENV), np.random.default_rng(seed)
    arrays = {key: [] for key in ("observations", "actions", "rewards", "terminals", "timeouts")}
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed * episodes + episode)
        done = False
        while not done:
            action = np.clip(swing_up(observation) + noise * rng.normal(), -2, 2)
            next_observation, reward, terminated, truncated, _ = env.step([action])
            for key, value in zip(arrays, (observation, [action], reward, terminated, truncated)):
                arrays[key].append(value)
            observation, done = next_observation, terminated or truncated
    return write_hdf5(path, {key: np.asarray(value) for key, value in arrays.items()}, env_id=env_id)
