"""A synthetic 2-D point task for testing the core without any environment: random walks of a
damped point mass in an open plane, observation [x, y, vx, vy], action in [-1, 1]^2."""

import numpy as np

from dfplanner.data.datasets import OfflineDataset

DAMPING, GAIN = 0.9, 0.1


def point_step(position, velocity, action):
    velocity = DAMPING * velocity + GAIN * np.clip(action, -1, 1)
    return position + velocity, velocity


def random_walks(episodes: int = 300, length: int = 60, seed: int = 0) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    observations, actions = [], []
    for _ in range(episodes):
        position, velocity, action = rng.uniform(-2, 2, 2), np.zeros(2), np.zeros(2)
        for _ in range(length):
            action = np.clip(0.8 * action + 0.5 * rng.normal(size=2), -1, 1)
            observations.append(np.r_[position, velocity])
            actions.append(action)
            position, velocity = point_step(position, velocity, action)
    observations = np.asarray(observations, np.float32)
    return OfflineDataset(
        observations=observations,
        actions=np.asarray(actions, np.float32),
        rewards=np.zeros(len(observations), np.float32),
        episode_ends=np.arange(length, len(observations) + 1, length),
    )
