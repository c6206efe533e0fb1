"""Causal denoisers: predict every token's clean value from its noisy self and the tokens before it.

Both models share one interface, so the trainer and the planner never ask which one they hold:

    state = model.initial_state(observation)      # summary of the known present
    state = model.advance(state, tokens, levels)  # fold executed / frozen tokens into the summary
    out = model(tokens, levels, state)            # one output per token, causal in time

`out` is the network output in the noise schedule's parameterization (x0, epsilon or v).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dfplanner.errors import DfplannerError

State = torch.Tensor | tuple[torch.Tensor, ...]
MODEL_TYPES = ("recurrent", "transformer")
# Sinusoidal embedding of the noise level: frequencies spread geometrically up to this period.
LEVEL_EMBEDDING_MAX_PERIOD = 10_000.0


class LevelEmbedding(nn.Module):
    """Noise level k in {0..K} -> vector: sinusoidal features of k/K followed by a small MLP.

    Outside training, the K+1 embeddings are computed once per version of the weights and looked up,
    so a sampling row costs an index and no host sync."""

    def __init__(self, dim: int, num_levels: int):
        super().__init__()
        self.num_levels = num_levels
        half = dim // 2
        freqs = torch.exp(-math.log(LEVEL_EMBEDDING_MAX_PERIOD) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))
        self._table: tuple[tuple, torch.Tensor] | None = None  # (weights' versions and device, embeddings)

    def _embed(self, levels: torch.Tensor) -> torch.Tensor:
        # Scale to [0, 1000] whatever K is, so the frequencies cover the range the same way.
        angle = (levels.float() * (1000.0 / self.num_levels)).unsqueeze(-1) * self.freqs
        return self.mlp(torch.cat([angle.sin(), angle.cos()], dim=-1))

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self._embed(levels)
        key = (self.freqs.device, *(p._version for p in self.mlp.parameters()), *(id(p) for p in self.mlp.parameters()))
        if self._table is None or self._table[0] != key:
            with torch.no_grad():
                self._table = (key, self._embed(torch.arange(self.num_levels + 1, device=self.freqs.device)))
        return self._table[1][levels]


def repeat_state(state: State, n: int) -> State:
    """Repeat each batch entry n times (batch-first states), e.g. for Monte Carlo Guidance samples."""
    if isinstance(state, torch.Tensor):
        return state.repeat_interleave(n, dim=0)
    return tuple(repeat_state(s, n) for s in state)


class RecurrentDenoiser(nn.Module):
    """The paper's model: z_t = GRU(z_{t-1}, embed(x_t^{k_t}, k_t)); x_t^0 is read out from z_t.

    The GRU input depends only on the token and its level, so the whole sequence runs through one
    fused multi-layer nn.GRU call instead of a Python loop over tokens.
    """

    def __init__(self, token_dim: int, obs_dim: int, num_levels: int, hidden: int = 256, layers: int = 1):
        super().__init__()
        self.token_dim, self.hidden, self.layers = token_dim, hidden, layers
        self.level_embedding = LevelEmbedding(hidden, num_levels)
        self.token_in = nn.Linear(token_dim, hidden)
        self.input_mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.observation_encoder = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.SiLU(), nn.Linear(hidden, layers * hidden), nn.Tanh()
        )
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, token_dim))

    def initial_state(self, observation: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) normalized observation -> (B, layers, hidden)."""
        return self.observation_encoder(observation).view(-1, self.layers, self.hidden)

    def _run(self, tokens: torch.Tensor, levels: torch.Tensor, state: torch.Tensor):
        embedded = self.input_mlp(self.token_in(tokens) + self.level_embedding(levels))
        outputs, last = self.gru(embedded, state.transpose(0, 1).contiguous())
        return embedded, outputs, last.transpose(0, 1)

    def advance(self, state: torch.Tensor, tokens: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] == 0:
            return state
        return self._run(tokens, levels, state)[2]

    def forward(self, tokens: torch.Tensor, levels: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        embedded, outputs, _ = self._run(tokens, levels, state)
        return self.head(torch.cat([outputs, embedded], dim=-1))


class TransformerDenoiser(nn.Module):
    """A causal transformer over [observation, context tokens..., tokens...] with a time mask.

    The state is the normalized start observation plus the context tokens folded in so far (the
    most recent `max_tokens - 1` of them), so `advance` is cheap and `forward` attends over them.
    """

    def __init__(
        self,
        token_dim: int,
        obs_dim: int,
        num_levels: int,
        hidden: int = 128,
        layers: int = 4,
        heads: int = 4,
        max_tokens: int = 128,
    ):
        super().__init__()
        self.token_dim, self.max_tokens = token_dim, max_tokens
        self.level_embedding = LevelEmbedding(hidden, num_levels)
        self.token_in = nn.Linear(token_dim, hidden)
        self.observation_in = nn.Linear(obs_dim, hidden)
        self.position = nn.Embedding(max_tokens + 1, hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, token_dim)

    def initial_state(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = observation.shape[0]
        empty_tokens = observation.new_zeros(batch, 0, self.token_in.in_features)
        empty_levels = torch.zeros(batch, 0, dtype=torch.long, device=observation.device)
        return observation, empty_tokens, empty_levels

    def advance(self, state, tokens: torch.Tensor, levels: torch.Tensor):
        observation, context, context_levels = state
        keep = self.max_tokens - 1
        context = torch.cat([context, tokens], dim=1)[:, -keep:]
        context_levels = torch.cat([context_levels, levels], dim=1)[:, -keep:]
        return observation, context, context_levels

    def forward(self, tokens: torch.Tensor, levels: torch.Tensor, state) -> torch.Tensor:
        observation, context, context_levels = state
        all_tokens = torch.cat([context, tokens], dim=1)
        all_levels = torch.cat([context_levels, levels], dim=1)
        length = all_tokens.shape[1] + 1
        if length > self.max_tokens + 1:
            raise DfplannerError(
                f"transformer sees {length - 1} tokens but was built for at most {self.max_tokens}"
            )
        x = torch.cat(
            [self.observation_in(observation).unsqueeze(1), self.token_in(all_tokens) + self.level_embedding(all_levels)],
            dim=1,
        )
        x = x + self.position(torch.arange(length, device=x.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
        x = self.blocks(x, mask=mask, is_causal=True)
        return self.head(self.norm(x[:, -tokens.shape[1] :])) if tokens.shape[1] else tokens


def build_model(config: dict, token_dim: int, obs_dim: int, num_levels: int) -> nn.Module:
    """A denoiser from its configuration: {"type": "recurrent"|"transformer", **sizes}."""
    options = {k: v for k, v in config.items() if k != "type"}
    kind = config.get("type", "recurrent")
    try:
        if kind == "recurrent":
            return RecurrentDenoiser(token_dim, obs_dim, num_levels, **options)
        if kind == "transformer":
            return TransformerDenoiser(token_dim, obs_dim, num_levels, **options)
    except TypeError as error:
        raise DfplannerError(f"bad {kind} model options {options}: {error}") from None
    raise DfplannerError(f"unknown model type {kind!r}; choose one of {', '.join(MODEL_TYPES)}")
