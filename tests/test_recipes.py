"""The recipes: the fast one's architecture and runtime settings (the tutorial's: test_train.py)."""

import pytest
import torch

from lftutor import ScalarPhi4Action
from lftutor.bijections.splines import SplineCoupling, ZeroModeSpline
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.training.loop import train
from lftutor.training.recipes import FAST, Recipe


def test_fast_recipe_is_a_mirror_symmetric_zero_mode_spline_then_spline_couplings():
    model = FAST.build_flow((8, 8))
    assert isinstance(model, Z2Symmetric)
    kinds = [type(layer) for layer in model.flow.layers]
    assert kinds == [ZeroModeSpline] + [SplineCoupling] * FAST.n_layers
    assert FAST.train_kwargs()["num_threads"] == 1


def test_training_restores_torch_threads():
    before = torch.get_num_threads()
    flow = FAST.build_flow((4, 4))
    seen = []
    train(flow, ScalarPhi4Action(-4, 8), steps=2,
          callbacks=[lambda h: seen.append(torch.get_num_threads())],
          **{**FAST.train_kwargs(), "batch_size": 4})
    assert seen == [1, 1]
    assert torch.get_num_threads() == before


def test_bad_recipe_raises():
    with pytest.raises(ValueError, match="coupling"):
        Recipe("x", coupling="conv")
    with pytest.raises(ValueError, match="n_layers >= 3"):
        Recipe("x", coupling="spline", n_layers=2)
