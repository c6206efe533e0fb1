"""Action heads: actions from the state now and a target state ahead, learned from the offline data.

An `ActionHead` is a small MLP a_t = f(o_t, target - o_t[dims]) fitted on the data with hindsight
targets: the data's own o_{t+k}[dims], k drawn from [ahead_min, ahead_max] within the episode. Two uses:
- inverse dynamics (`kind="inverse"`, every observation dimension, k = the planner's `track_ahead`):
  the planner's `action_mode = "inverse"` turns its planned state k steps ahead into the action, for
  bodies whose actions no controller derives from a plan (an ant's torques);
- goal-conditioned behaviour cloning (`kind="bc"`, the position dimensions, k over a range): with the
  route subgoals the planner aims at, the model-free baseline `dfplan eval --policy bc`.
A head is saved beside its checkpoint as NAME.KIND.safetensors, described (and its digest recorded) in
NAME.json under "heads".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dfplanner.data.offline import OfflineDataset
from dfplanner.errors import DfplannerError

HEAD_KINDS = ("inverse", "bc")
STD_FLOOR = 1e-6  # a constant dimension is not scaled by zero
STATISTICS_PAIRS = 100_000  # hindsight pairs drawn once to set the target scale (more changes it by well under 1%)


@dataclass(frozen=True)
class HeadSpec:
    """What a head reads and how it was fitted (recorded in the checkpoint JSON)."""

    kind: str
    target_dims: tuple[int, ...]
    ahead_min: int
    ahead_max: int
    hidden: int = 256
    layers: int = 3
    action_limit: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_dims", tuple(self.target_dims))
        if self.kind not in HEAD_KINDS:
            raise DfplannerError(f"unknown action head {self.kind!r}; choose one of {', '.join(HEAD_KINDS)}")
        if not 1 <= self.ahead_min <= self.ahead_max:
            raise DfplannerError(f"action head: need 1 <= ahead_min <= ahead_max, got {self.ahead_min}, {self.ahead_max}")

    def to_dict(self) -> dict:
        return {**asdict(self), "target_dims": list(self.target_dims)}


class ActionHead(nn.Module):
    """The MLP with the data's normalization inside it, so that it takes and returns env units."""

    def __init__(self, spec: HeadSpec, obs_dim: int, act_dim: int):
        super().__init__()
        self.spec = spec
        width = [obs_dim + len(spec.target_dims)] + [spec.hidden] * spec.layers
        layers: list[nn.Module] = []
        for a, b in zip(width[:-1], width[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width[-1], act_dim))
        for name, size in (("obs_mean", obs_dim), ("obs_std", obs_dim), ("delta_std", len(spec.target_dims))):
            self.register_buffer(name, torch.zeros(size) if name == "obs_mean" else torch.ones(size))

    def forward(self, observations: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim), (B, len(target_dims)) -> (B, act_dim) actions in [-action_limit, action_limit]."""
        delta = (targets - observations[:, list(self.spec.target_dims)]) / self.delta_std
        inputs = torch.cat([(observations - self.obs_mean) / self.obs_std, delta], dim=-1)
        return self.spec.action_limit * torch.tanh(self.net(inputs))

    @torch.no_grad()
    def act(self, observations: np.ndarray, targets: np.ndarray) -> np.ndarray:
        device = self.obs_mean.device
        out = self(torch.as_tensor(observations, dtype=torch.float32, device=device),
                   torch.as_tensor(targets, dtype=torch.float32, device=device))
        return out.cpu().numpy()


def hindsight_pairs(dataset: OfflineDataset, spec: HeadSpec, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """`count` (observation, target, action) triples: a step t and the data's own state k steps later in
    its episode (k uniform in [ahead_min, ahead_max], cut at the episode's last row)."""
    ends = np.asarray(dataset.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    lengths = ends - starts
    usable = lengths > 1
    if not usable.any():
        raise DfplannerError(f"{dataset.source or 'the dataset'}: no episode has two steps to learn an action head from")
    episode = rng.choice(np.flatnonzero(usable), size=count, p=(lengths[usable] - 1) / (lengths[usable] - 1).sum())
    t = starts[episode] + (rng.random(count) * (lengths[episode] - 1)).astype(np.int64)
    k = rng.integers(spec.ahead_min, spec.ahead_max + 1, size=count)
    later = np.minimum(t + k, ends[episode] - 1)
    obs = dataset.observations
    return obs[t], obs[later][:, list(spec.target_dims)], dataset.actions[t]


def fit_action_head(dataset: OfflineDataset, spec: HeadSpec, steps: int = 5000, batch_size: int = 512, lr: float = 1e-3,
                    seed: int = 0, progress: bool = True) -> ActionHead:
    """Fit a head by mean squared error on hindsight pairs drawn afresh each step (Adam, cosine decay)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = ActionHead(spec, dataset.observations.shape[1], dataset.actions.shape[1])
    obs, targets, _ = hindsight_pairs(dataset, spec, STATISTICS_PAIRS, rng)  # statistics only
    head.obs_mean.copy_(torch.as_tensor(dataset.observations.mean(axis=0)))
    head.obs_std.copy_(torch.as_tensor(dataset.observations.std(axis=0)).clamp(min=STD_FLOOR))
    head.delta_std.copy_(torch.as_tensor((targets - obs[:, list(spec.target_dims)]).std(axis=0)).clamp(min=STD_FLOOR))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    with tqdm(range(steps), desc=f"{spec.kind} head", unit="step", disable=not progress) as bar:
        for _ in bar:
            o, g, a = (torch.as_tensor(x, dtype=torch.float32) for x in hindsight_pairs(dataset, spec, batch_size, rng))
            loss = torch.mean((head(o, g) - a.clamp(-spec.action_limit, spec.action_limit)) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return head.eval()
