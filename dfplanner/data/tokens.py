"""Token layout: how env steps become the tokens the denoiser sees, and their normalization.

An env step t contributes [a_t, r_t, o_{t+1}] (the action taken, the reward received, the observation
reached); channels can be dropped (maze2d drops the reward). `frame_stack` consecutive env steps form
one token, so a token of F steps holds F * (act_dim + 1 + obs_dim) numbers at most. Normalization is
a per-dimension z-score whose statistics come from the training data and travel with the model.

With `observation_deltas` (the default) the observation channel holds o_{t+1} - o_t. The planner then
recovers planned observations as the known current observation plus a cumulative sum, so a plan
starts exactly where the agent is, and the network regresses small, stationary increments instead of
absolute coordinates it would have to reproduce to a hundredth of the maze's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from dfplanner.errors import DfplannerError

CHANNELS = ("action", "reward", "observation")
# Dimensions that never vary in the data keep a unit scale instead of dividing by ~0.
MIN_STD = 1e-6


@dataclass(frozen=True)
class TokenLayout:
    obs_dim: int
    act_dim: int
    frame_stack: int = 1
    channels: tuple[str, ...] = ("action", "observation")
    observation_deltas: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.channels) - set(CHANNELS)
        if unknown or not self.channels:
            raise DfplannerError(f"token channels must be a non-empty subset of {CHANNELS}, got {self.channels}")
        if self.frame_stack < 1:
            raise DfplannerError(f"frame_stack must be >= 1, got {self.frame_stack}")
        object.__setattr__(self, "channels", tuple(c for c in CHANNELS if c in self.channels))

    @property
    def channel_sizes(self) -> dict[str, int]:
        sizes = {"action": self.act_dim, "reward": 1, "observation": self.obs_dim}
        return {c: sizes[c] for c in self.channels}

    @property
    def step_dim(self) -> int:
        """Numbers per env step inside a token."""
        return sum(self.channel_sizes.values())

    @property
    def token_dim(self) -> int:
        return self.frame_stack * self.step_dim

    def channel_slice(self, channel: str) -> slice:
        """Where a channel sits inside one env step's row."""
        if channel not in self.channels:
            raise DfplannerError(f"this model's tokens have no {channel!r} channel (channels: {self.channels})")
        start = 0
        for name, size in self.channel_sizes.items():
            if name == channel:
                return slice(start, start + size)
            start += size
        raise AssertionError(channel)

    def steps_from_arrays(
        self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_observations: np.ndarray
    ) -> np.ndarray:
        """Env-step rows (..., step_dim) from aligned arrays o_t, a_t, r_t, o_{t+1}."""
        reached = next_observations - observations if self.observation_deltas else next_observations
        parts = {"action": actions, "reward": np.asarray(rewards)[..., None], "observation": reached}
        return np.concatenate([parts[c] for c in self.channels], axis=-1).astype(np.float32)

    def channels_from_steps(self, steps: torch.Tensor, start_observation: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unnormalized rows (B, L, step_dim) -> channels in env units; observations are o_{t+1}
        (integrated from `start_observation` (B, obs_dim) when deltas are used)."""
        out = {c: steps[..., self.channel_slice(c)] for c in self.channels}
        if "reward" in out:
            out["reward"] = out["reward"][..., 0]
        if "observation" in out and self.observation_deltas:
            out["observation"] = start_observation[:, None, :] + out["observation"].cumsum(dim=1)
        return out

    def to_tokens(self, steps: torch.Tensor) -> torch.Tensor:
        """(..., T*F, step_dim) env-step rows -> (..., T, token_dim) tokens."""
        *lead, n, d = steps.shape
        return steps.reshape(*lead, n // self.frame_stack, self.frame_stack * d)

    def to_steps(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., T, token_dim) tokens -> (..., T*F, step_dim) env-step rows."""
        *lead, t, _ = tokens.shape
        return tokens.reshape(*lead, t * self.frame_stack, self.step_dim)

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> "TokenLayout":
        return cls(**{**data, "channels": tuple(data["channels"])})


@dataclass
class Normalizer:
    """Per-dimension z-score of env-step rows and of observations (for the initial-state encoder)."""

    step_mean: np.ndarray
    step_std: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray

    @classmethod
    def fit(cls, steps: np.ndarray, observations: np.ndarray) -> "Normalizer":
        return cls(
            steps.mean(0).astype(np.float32),
            np.maximum(steps.std(0), MIN_STD).astype(np.float32),
            observations.mean(0).astype(np.float32),
            np.maximum(observations.std(0), MIN_STD).astype(np.float32),
        )

    def _stats(self, name: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
        return torch.as_tensor(mean, device=like.device, dtype=like.dtype), torch.as_tensor(std, device=like.device, dtype=like.dtype)

    def normalize_steps(self, steps: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats("step", steps)
        return (steps - mean) / std

    def unnormalize_steps(self, steps: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats("step", steps)
        return steps * std + mean

    def normalize_observations(self, observations: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats("obs", observations)
        return (observations - mean) / std

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("step_mean", "step_std", "obs_mean", "obs_std")}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        return cls(**{k: np.asarray(data[k], dtype=np.float32) for k in ("step_mean", "step_std", "obs_mean", "obs_std")})


@dataclass(frozen=True)
class TokenCodec:
    """Normalized tokens <-> a plan in env units, both ways: the planner reads plans from tokens, and
    plan-space guidance writes a displacement of the plan back into token space."""

    layout: TokenLayout
    normalizer: Normalizer

    def decode(self, tokens: torch.Tensor, start_observation: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, D) normalized tokens -> channels in env units, (B, T*F, dim) each (reward: (B, T*F));
        `start_observation` (B, obs_dim) is where the plan begins."""
        steps = self.normalizer.unnormalize_steps(self.layout.to_steps(tokens))
        return self.layout.channels_from_steps(steps, start_observation)

    def encode_steps(self, steps: torch.Tensor) -> torch.Tensor:
        """(B, T*F, step_dim) env-step rows in env units -> (B, T, D) normalized tokens."""
        return self.layout.to_tokens(self.normalizer.normalize_steps(steps))

    def displacement_to_tokens(self, moves: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """A displacement of the decoded plan (channel -> tensor shaped like `decode`'s) as token units.

        With observation deltas, moving planned state t by m_t moves delta t by m_t - m_{t-1}."""
        layout = self.layout
        steps = torch.zeros(like.shape[0], like.shape[1] * layout.frame_stack, layout.step_dim, device=like.device, dtype=like.dtype)
        for channel, move in moves.items():
            if channel == "reward":
                move = move.unsqueeze(-1)
            if channel == "observation" and layout.observation_deltas:
                move = move - torch.nn.functional.pad(move, (0, 0, 1, 0))[:, :-1]
            steps[..., layout.channel_slice(channel)] = move
        std = torch.as_tensor(self.normalizer.step_std, device=like.device, dtype=like.dtype)
        return layout.to_tokens(steps / std)
