import numpy as np
import pytest
import torch

from dfplanner.training.checkpoint import TrainedModel, load_trained_model
from dfplanner.errors import DfplannerError
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.diffusion.objective import EMA, diffusion_forcing_loss
from dfplanner.data.tokens import Normalizer, TokenLayout
from dfplanner.data.windows import WindowSampler


def counting_data(n=40, ends=(15, 40)):
    """Observations whose first entry is the step index, so windows can be read off."""
    observations = np.stack([np.arange(n), np.zeros(n)], 1).astype(np.float32)
    actions = np.full((n, 1), 0.5, np.float32)
    return observations, actions, np.arange(n, dtype=np.float32), np.array(ends)


def test_layout_round_trips_and_integrates_deltas():
    layout = TokenLayout(obs_dim=2, act_dim=1, frame_stack=3, channels=("observation", "reward", "action"))
    assert layout.channels == ("action", "reward", "observation") and layout.token_dim == 12
    obs, act, rew, _ = counting_data()
    rows = layout.steps_from_arrays(obs[:6], act[:6], rew[:6], obs[1:7])
    assert np.allclose(rows[:, layout.channel_slice("observation")], [[1, 0]] * 6)  # deltas
    tokens = layout.to_tokens(torch.from_numpy(rows))
    assert tokens.shape == (2, 12) and torch.equal(layout.to_steps(tokens), torch.from_numpy(rows))
    plan = layout.channels_from_steps(torch.from_numpy(rows)[None], torch.from_numpy(obs[:1]))
    assert np.allclose(plan["observation"][0, :, 0], np.arange(1, 7)) and plan["reward"].shape == (1, 6)
    with pytest.raises(DfplannerError, match="channels"):
        TokenLayout(2, 1, channels=("pixels",))


def test_windows_never_cross_an_episode_end_unless_asked():
    obs, act, rew, ends = counting_data()
    layout = TokenLayout(obs_dim=2, act_dim=1, frame_stack=2, observation_deltas=False)
    sampler = WindowSampler(obs, act, rew, ends, layout, tokens=4, normalizer=Normalizer(np.zeros(3, np.float32), np.ones(3, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32)))
    batch = sampler.batch(np.array([10, 0]))
    assert torch.equal(batch.observations[:, 0], torch.tensor([10.0, 0.0]))
    # window at 10: steps 10..13 have o_{t+1} inside episode [0, 15); step 14 would need o_15
    assert batch.mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    reached = layout.to_steps(batch.tokens)[..., 1]
    assert reached[0, :4].tolist() == [11, 12, 13, 14] and reached[1].tolist() == list(range(1, 9))
    assert not np.isin(np.arange(13, 15), sampler.starts).any()  # no room for a whole token there
    crossing = WindowSampler(obs, act, rew, ends, layout, tokens=4, cross_episodes=True, normalizer=sampler.normalizer)
    assert crossing.batch(np.array([10])).mask.all()


def test_masked_padding_does_not_change_the_loss():
    torch.manual_seed(0)
    layout = TokenLayout(obs_dim=2, act_dim=1, frame_stack=2)
    schedule = NoiseSchedule(100)
    model = TrainedModel.create({"hidden": 16}, schedule, layout, Normalizer(*(np.zeros(3, np.float32), np.ones(3, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32)))).model
    obs, act, rew, ends = counting_data()
    sampler = WindowSampler(obs, act, rew, ends, layout, tokens=4)
    batch = sampler.batch(np.array([10, 0]))
    loss = diffusion_forcing_loss(model, schedule, batch, generator=torch.Generator().manual_seed(1))
    batch.tokens[~batch.mask] = 1e6  # garbage in padded tokens
    same = diffusion_forcing_loss(model, schedule, batch, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss, same)
    assert diffusion_forcing_loss(model, schedule, batch, "min_snr", torch.Generator().manual_seed(1)) > 0
    with pytest.raises(DfplannerError, match="loss weighting"):
        diffusion_forcing_loss(model, schedule, batch, "magic")


def test_ema_moves_towards_the_model():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.5)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 0.5)


def test_checkpoint_round_trip_and_refusals(tmp_path):
    layout = TokenLayout(obs_dim=4, act_dim=2, frame_stack=2)
    norm = Normalizer(np.zeros(12, np.float32), np.ones(12, np.float32), np.zeros(4, np.float32), np.ones(4, np.float32))
    trained = TrainedModel.create({"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "max_tokens": 8}, NoiseSchedule(50, "cosine", "v"), layout, norm, {"env_id": "x"})
    trained.save(tmp_path / "m")
    loaded = load_trained_model(tmp_path / "m.json")
    for a, b in zip(trained.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.schedule.prediction == "v" and loaded.layout == layout and loaded.metadata["env_id"] == "x"
    description = (tmp_path / "m.json").read_text().replace('"format_version": 1', '"format_version": 99')
    (tmp_path / "m.json").write_text(description)
    with pytest.raises(DfplannerError, match="newer"):
        load_trained_model(tmp_path / "m")
    with pytest.raises(DfplannerError, match="not found"):
        load_trained_model(tmp_path / "missing")


def test_training_draws_independent_uniform_levels_per_token():
    """Diffusion Forcing's objective: every token of every window its own level, uniform over {0..K}."""

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.levels = []
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def initial_state(self, observations):
            return observations

        def forward(self, tokens, levels, state):
            self.levels.append(levels)
            return tokens * self.weight

    layout = TokenLayout(obs_dim=2, act_dim=1, frame_stack=2)
    obs, act, rew, ends = counting_data(n=400, ends=(400,))
    batch = WindowSampler(obs, act, rew, ends, layout, tokens=4).batch(np.arange(0, 300, 2))
    model, schedule = Recorder(), NoiseSchedule(9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        diffusion_forcing_loss(model, schedule, batch, generator=generator)
    levels = torch.cat(model.levels).float()  # (draws, tokens)
    counts = torch.bincount(levels.flatten().long(), minlength=10).float()
    expected = levels.numel() / 10
    assert ((counts - expected) ** 2 / expected).sum() < 30  # chi-square, 9 dof: p ~ 0.0005
    correlation = torch.corrcoef(levels.T)
    off_diagonal = correlation[~torch.eye(len(correlation), dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.05  # tokens of a window do not share their level
    assert (levels.std(dim=1) > 0).float().mean() > 0.95


def test_weight_decay_spares_biases_and_norms():
    from dfplanner.training.trainer import parameter_groups

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    decayed, spared = parameter_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [torch.Size([4, 3])]
    assert spared["weight_decay"] == 0.0 and len(spared["params"]) == 3
