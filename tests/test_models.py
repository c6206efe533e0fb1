import pytest
import torch

from dfplanner.errors import DfplannerError
from dfplanner.diffusion.models import LevelEmbedding, build_model, repeat_state

CONFIGS = [{"type": "recurrent", "hidden": 32, "layers": 2}, {"type": "transformer", "hidden": 32, "layers": 2, "heads": 2, "max_tokens": 16}]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["type"])
def test_changing_later_tokens_never_changes_earlier_outputs(config):
    torch.manual_seed(0)
    model = build_model(config, token_dim=6, obs_dim=4, num_levels=100).eval()
    obs, tokens = torch.randn(2, 4), torch.randn(2, 8, 6)
    levels = torch.randint(0, 101, (2, 8))
    state = model.initial_state(obs)
    out = model(tokens, levels, state)
    for t in range(7):
        changed, changed_levels = tokens.clone(), levels.clone()
        changed[:, t + 1 :] = torch.randn(2, 7 - t, 6)
        changed_levels[:, t + 1 :] = torch.randint(0, 101, (2, 7 - t))
        other = model(changed, changed_levels, state)
        assert torch.allclose(out[:, : t + 1], other[:, : t + 1], atol=1e-5)
        assert not torch.allclose(out[:, t + 1 :], other[:, t + 1 :])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["type"])
def test_advance_then_forward_equals_one_forward(config):
    """Folding a prefix into the state is the same as running it: the planner relies on this."""
    torch.manual_seed(0)
    model = build_model(config, token_dim=6, obs_dim=4, num_levels=100).eval()
    obs, tokens, levels = torch.randn(3, 4), torch.randn(3, 6, 6), torch.randint(0, 101, (3, 6))
    state = model.initial_state(obs)
    whole = model(tokens, levels, state)
    split = model(tokens[:, 4:], levels[:, 4:], model.advance(state, tokens[:, :4], levels[:, :4]))
    assert torch.allclose(whole[:, 4:], split, atol=1e-5)
    repeated = model(tokens.repeat_interleave(2, 0), levels.repeat_interleave(2, 0), repeat_state(state, 2))
    assert torch.allclose(repeated[::2], whole, atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["type"])
def test_output_depends_on_noise_level(config):
    torch.manual_seed(0)
    model = build_model(config, token_dim=6, obs_dim=4, num_levels=100)
    obs, tokens = torch.randn(1, 4), torch.randn(1, 3, 6)
    state = model.initial_state(obs)
    low = model(tokens, torch.full((1, 3), 5), state)
    high = model(tokens, torch.full((1, 3), 95), state)
    assert not torch.allclose(low, high)


def test_bad_model_config():
    with pytest.raises(DfplannerError, match="unknown model type"):
        build_model({"type": "lstm"}, 6, 4, 100)
    with pytest.raises(DfplannerError, match="bad recurrent model options"):
        build_model({"type": "recurrent", "width": 3}, 6, 4, 100)


def test_level_embedding_of_a_batch_equals_each_level_alone():
    embedding = LevelEmbedding(16, num_levels=1000)
    levels = torch.tensor([[0, 500, 1000, 500], [3, 3, 999, 0]])
    together = embedding(levels)
    assert together.shape == (2, 4, 16)
    for index in torch.cartesian_prod(torch.arange(2), torch.arange(4)):
        alone = embedding(levels[index[0], index[1]].view(1))[0]
        torch.testing.assert_close(together[index[0], index[1]], alone)


def test_level_embedding_table_follows_the_weights():
    """Outside training the embedding is a looked-up table; it must equal the direct computation and
    be rebuilt when the weights change (an optimizer or EMA step, a loaded checkpoint)."""
    embedding = LevelEmbedding(16, num_levels=100)
    levels = torch.tensor([[0, 50, 100], [7, 7, 99]])
    direct = embedding(levels)  # training mode: computed
    embedding.eval()
    torch.testing.assert_close(embedding(levels), direct)
    with torch.no_grad():
        embedding.mlp[-1].bias.add_(1.0)
    torch.testing.assert_close(embedding(levels), direct + 1.0)
