"""Training windows: random slices of the offline data, cut into tokens, with a mask for padding.

A window starting at env step s holds the observation o_s (what the planner will know) and the rows
[a_t, r_t, o_{t+1}] for t = s .. s + tokens*frame_stack - 1. A window never runs past the end of
its episode: the steps beyond are padding, masked out of the loss. `cross_episodes=True` treats the
data as one continuous stream, which is right for D4RL maze2d (its "episodes" end when a goal is
reached, but the agent is never reset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dfplanner.errors import DfplannerError
from dfplanner.data.tokens import Normalizer, TokenLayout


@dataclass
class WindowBatch:
    observations: torch.Tensor  # (B, obs_dim) normalized o_s
    tokens: torch.Tensor  # (B, T, token_dim) normalized clean tokens
    mask: torch.Tensor  # (B, T) bool: token lies wholly inside its episode


class WindowSampler:
    def __init__(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        episode_ends: np.ndarray,
        layout: TokenLayout,
        tokens: int,
        normalizer: Normalizer | None = None,
        stride: int = 1,
        cross_episodes: bool = False,
    ):
        n = len(observations)
        self.layout, self.tokens = layout, tokens
        self.length = tokens * layout.frame_stack
        ends = np.array([n]) if cross_episodes else np.asarray(episode_ends, dtype=np.int64)
        starts_of_episodes = np.concatenate([[0], ends[:-1]])
        # Step t needs o_{t+1} from the same episode, so an episode [b, e) has steps b .. e-2.
        self.step_end = np.repeat(ends - 1, ends - starts_of_episodes)
        next_obs = np.concatenate([observations[1:], observations[-1:]])
        rows = layout.steps_from_arrays(observations, actions, rewards, next_obs)
        self.normalizer = normalizer or Normalizer.fit(rows[self.step_end > np.arange(n)], observations)
        self.rows = self.normalizer.normalize_steps(torch.from_numpy(rows))
        self.start_obs = self.normalizer.normalize_observations(torch.from_numpy(observations.astype(np.float32)))
        # A start is usable when at least one whole token fits before its episode ends.
        candidates = np.arange(0, n, stride)
        self.starts = candidates[candidates + layout.frame_stack <= self.step_end[candidates]]
        if len(self.starts) == 0:
            raise DfplannerError(
                f"no episode is long enough for one token of {layout.frame_stack} steps "
                f"(dataset of {n} steps, {len(ends)} episodes)"
            )

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, starts: np.ndarray) -> WindowBatch:
        """The windows beginning at the given env steps."""
        index = starts[:, None] + np.arange(self.length)[None, :]
        valid = index < self.step_end[starts][:, None]
        index = np.minimum(index, len(self.rows) - 1)
        steps = self.rows[torch.from_numpy(index)] * torch.from_numpy(valid).unsqueeze(-1)
        mask = valid.reshape(len(starts), self.tokens, self.layout.frame_stack).all(-1)
        return WindowBatch(
            observations=self.start_obs[torch.from_numpy(starts)],
            tokens=self.layout.to_tokens(steps),
            mask=torch.from_numpy(mask),
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> WindowBatch:
        return self.batch(self.starts[rng.integers(0, len(self.starts), batch_size)])
