"""The CUDA path, where a GPU exists (skipped elsewhere): the shipped planner, its gradient through the
GRU in eval mode (which cuDNN refuses), batched and in bfloat16."""

import numpy as np
import pytest
import torch

from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint
from dfplanner.evaluation.rollout import evaluate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("mcg_samples", [1, 4])
def test_shipped_planner_plans_on_cuda(precision, mcg_samples):
    planner = load_planner(shipped_checkpoint("maze2d-umaze-v1"), "maze2d-umaze-v1", device="cuda", precision=precision,
                           mcg_samples=mcg_samples, episode_steps=300)
    result = evaluate("maze2d-umaze", planner, episodes=8, batch_size=8, progress=False)
    assert result["success_rate"] >= 0.75 and np.isfinite(result["return_mean"])
    assert next(planner.trained.model.parameters()).is_cuda

