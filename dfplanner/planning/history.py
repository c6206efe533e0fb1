"""What the planner remembers of each environment's episode: executed tokens, token phase, current plan.

Every array is per environment (first axis B), so one environment's reset restarts that one alone.
The model state of a decision is rebuilt from the observation at the oldest kept token boundary,
folded over the executed tokens since (at most `context_tokens`, real values at level 0).
"""

from __future__ import annotations

import numpy as np
import torch

from dfplanner.training.checkpoint import TrainedModel
from dfplanner.diffusion.models import State


class EpisodeHistory:
    def __init__(self, batch: int, trained: TrainedModel, context_tokens: int, device: torch.device):
        layout = trained.layout
        self.batch, self.trained, self.keep, self.device = batch, trained, context_tokens, device
        self.single = False  # the caller passes one observation, not a batch
        self.observation = np.zeros((batch, layout.obs_dim), np.float32)  # the latest observation
        self.episode_step = np.zeros(batch, np.int64)
        self.phase = np.zeros(batch, np.int64)  # env steps executed of the current token
        self.rows = np.zeros((batch, layout.frame_stack, layout.step_dim), np.float32)
        self.boundaries = np.zeros((batch, context_tokens + 1, layout.obs_dim), np.float32)  # newest last
        self.context = torch.zeros(batch, context_tokens, layout.token_dim, device=device)  # newest last
        self.context_len = np.zeros(batch, np.int64)
        self.previous: tuple[np.ndarray, np.ndarray] | None = None  # (observation, action) of the last step
        self.previous_valid = np.zeros(batch, bool)  # False right after a reset
        self.plan: dict[str, np.ndarray] = {}  # channel -> (B, L, dim), NaN past each environment's plan
        self.plan_start = np.zeros(batch, np.int64)
        self.plan_length = np.zeros(batch, np.int64)  # 0: no plan yet
        self.kept = np.zeros(batch, np.int64)
        self.replan = np.zeros(batch, bool)
        self.rolling: list[tuple[torch.Tensor, torch.Tensor, np.ndarray] | None] = [None] * batch

    @classmethod
    def start(cls, observations: np.ndarray, trained: TrainedModel, context_tokens: int, device: torch.device) -> EpisodeHistory:
        history = cls(len(observations), trained, context_tokens, device)
        history.restart(np.ones(len(observations), bool), observations)
        return history

    def restart(self, mask: np.ndarray, observations: np.ndarray) -> None:
        """New episodes in the masked environments, starting from their `observations`."""
        self.observation[mask] = observations[mask]
        self.boundaries[mask, -1] = observations[mask]
        for array in (self.episode_step, self.phase, self.context_len, self.plan_length):
            array[mask] = 0
        self.previous_valid[mask] = False
        for env in np.flatnonzero(mask):
            self.rolling[env] = None

    def forget_rolling(self) -> None:
        """The next plans start from noise (e.g. after a new goal)."""
        self.rolling = [None] * self.batch

    def context_length(self, env: int) -> int:
        return int(self.context_len[env])

    # ---- stepping ------------------------------------------------------------------------------
    def record(self, observations: np.ndarray, reward) -> None:
        """Keep the transition that led to `observations`; fold every completed token into the context."""
        valid = self.previous_valid
        if valid.any():
            obs_prev, action = self.previous
            rewards = self._rewards(reward)
            steps = self.trained.layout.steps_from_arrays(obs_prev[valid], action[valid], rewards[valid], observations[valid])
            self.rows[valid, self.phase[valid]] = steps
            self.phase[valid] += 1
            done = self.phase == self.trained.layout.frame_stack
            if done.any():
                self._fold(done, observations)
        self.observation = observations.copy()

    def _rewards(self, reward) -> np.ndarray:
        """The rewards of the last step: given, else the planned ones, else zeros."""
        if reward is not None:
            return np.broadcast_to(np.asarray(reward, dtype=np.float32), (self.batch,))
        if "reward" not in self.plan:
            return np.zeros(self.batch, np.float32)
        index = np.clip(self.episode_step - 1 - self.plan_start, 0, self.plan["reward"].shape[1] - 1)
        return self.plan["reward"][np.arange(self.batch), index]

    def _fold(self, done: np.ndarray, observations: np.ndarray) -> None:
        self.phase[done] = 0
        if not self.keep:
            self.boundaries[done, -1] = observations[done]
            return
        steps = torch.as_tensor(self.rows[done], device=self.device)
        token = self.trained.codec.encode_steps(steps)  # (n, 1, D)
        index = torch.as_tensor(np.flatnonzero(done), device=self.device)
        self.context[index] = torch.cat([self.context[index, 1:], token], dim=1)
        self.boundaries[done] = np.concatenate([self.boundaries[done, 1:], observations[done, None]], axis=1)
        self.context_len[done] = np.minimum(self.context_len[done] + 1, self.keep)

    def due(self, replan_every: int) -> np.ndarray:
        """(B,) bool: at a token boundary and without a usable plan (none, used up, or a replan asked)."""
        offset = self.episode_step - self.plan_start
        used_up = offset >= np.minimum(replan_every, self.plan_length)
        return (self.phase == 0) & ((self.plan_length == 0) | used_up | self.replan)

    def acted(self, observations: np.ndarray, actions: np.ndarray) -> None:
        self.previous = (observations.copy(), actions)
        self.previous_valid[:] = True
        self.episode_step += 1

    # ---- planning ------------------------------------------------------------------------------
    @torch.no_grad()
    def model_state(self, envs: np.ndarray, model: torch.nn.Module) -> State:
        """The model state of these environments (all with the same context length)."""
        length = int(self.context_len[envs[0]])
        anchor = torch.as_tensor(self.boundaries[envs, -(length + 1)], device=self.device)
        state = model.initial_state(self.trained.normalizer.normalize_observations(anchor))
        if length:
            tokens = self.context[torch.as_tensor(envs, device=self.device), self.keep - length :]
            state = model.advance(state, tokens, torch.zeros(tokens.shape[:2], dtype=torch.long, device=self.device))
        return state

    def set_plans(self, envs: np.ndarray, channels: dict[str, np.ndarray], kept: np.ndarray) -> None:
        """Store new plans (channel -> (len(envs), L, ...)) for these environments, starting now."""
        length = next(iter(channels.values())).shape[1]
        for name, values in channels.items():
            old = self.plan.get(name)
            width = max(length, old.shape[1] if old is not None else 0)
            grown = np.full((self.batch, width, *values.shape[2:]), np.nan, np.float32)
            if old is not None:
                grown[:, : old.shape[1]] = old
            grown[envs] = np.nan
            grown[envs, :length] = values
            self.plan[name] = grown
        self.plan_start[envs] = self.episode_step[envs]
        self.plan_length[envs] = length
        self.kept[envs] = kept
        self.replan[envs] = False

    def keep_rolling(self, envs: np.ndarray, tokens: torch.Tensor, estimate: torch.Tensor, levels: np.ndarray) -> None:
        """Keep every candidate's tokens (and their clean estimate) at `levels`, to continue them next time."""
        n = len(tokens) // len(envs)
        for i, env in enumerate(envs):
            self.rolling[env] = (tokens[i * n : (i + 1) * n], estimate[i * n : (i + 1) * n].detach(), levels)

    def rolling_start(self, envs: np.ndarray, shift: int, horizon: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept plans shifted by the `shift` tokens executed, fresh noise (and a zero estimate) at the end."""
        tokens, estimates = [], []
        for env in envs:
            previous, estimate, _ = self.rolling[env]
            fresh = max(0, horizon - previous.shape[1] + shift)
            noise = torch.randn(previous.shape[0], fresh, previous.shape[2], generator=generator, device=previous.device)
            tokens.append(torch.cat([previous[:, shift:], noise], dim=1)[:, :horizon])
            estimates.append(torch.cat([estimate[:, shift:], torch.zeros_like(noise)], dim=1)[:, :horizon])
        return torch.cat(tokens), torch.cat(estimates)
