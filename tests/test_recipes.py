"""The recipes: the fast one's architecture and runtime settings (the tutorial's: test_train.py)."""

import pytest
import torch

from lftutor import ScalarPhi4Action
from lftutor.bijections.splines import SplineCoupling, ZeroModeSpline
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.training.loop import train
from lftutor.training.recipes import FAST, RECIPES, Recipe


def test_fast_recipe_is_a_mirror_symmetric_zero_mode_spline_then_spline_couplings():
    model = FAST.build_flow((8, 8))
    assert isinstance(model, Z2Symmetric)
    kinds = [type(layer) for layer in model.flow.layers]
    assert kinds == [ZeroModeSpline] + [SplineCoupling] * FAST.n_layers
    assert FAST.train_kwargs()["num_threads"] == 1
    # the even couplings cycle through the four colours (8 of the 64 sites each, 8 neighbours
    # in a 5x5 window); the last one samples the 32 odd sites from their 4 neighbours
    shapes = [tuple(layer.neighbour_index.shape) for layer in model.flow.layers[1:]]
    assert shapes == [(8, 8)] * (FAST.n_layers - 1) + [(32, 4)]


def test_fast_ab_is_the_previous_fast_recipe_and_the_shipped_weights_are_fast():
    from lftutor.training.recipes import FAST_AB, PRETRAINED, get_recipe

    assert get_recipe("fast-ab") is FAST_AB and FAST_AB.even_colours == 2
    shapes = [tuple(layer.neighbour_index.shape) for layer in FAST_AB.build_flow((8, 8)).flow.layers[1:]]
    assert shapes == [(16, 4)] * (FAST_AB.n_layers - 1) + [(32, 4)]
    assert PRETRAINED[(8, -4.0, 8.0)].recipe == "fast"  # so `mcmc phi4 --weights` needs no --recipe


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


def test_recipe_for_picks_the_gpu_recipe_on_cuda_and_both_share_one_architecture():
    """The device decides the recipe (tested on the CPU by naming the device type)."""
    from lftutor.training.recipes import FAST_GPU, get_recipe, recipe_for

    assert recipe_for("cpu") is FAST and recipe_for(torch.device("cpu")) is FAST
    assert recipe_for("cuda") is FAST_GPU and recipe_for(torch.device("cuda", 0)) is FAST_GPU
    assert get_recipe("auto", "cuda") is FAST_GPU and get_recipe("auto", "cpu") is FAST
    assert FAST_GPU.batch_size > FAST.batch_size and FAST_GPU.num_threads is None
    # the same flow, so shipped weights load into either
    cpu, gpu = FAST.build_flow((8, 8)).state_dict(), FAST_GPU.build_flow((8, 8)).state_dict()
    assert {k: v.shape for k, v in cpu.items()} == {k: v.shape for k, v in gpu.items()}
    # and the GPU recipe trains (here on the CPU, two small steps)
    history = train(FAST_GPU.build_flow((4, 4)), ScalarPhi4Action(-4, 8), steps=2,
                    **{**FAST_GPU.train_kwargs(), "batch_size": 8})
    assert len(history) == 2


def test_shipped_weights_load_and_give_a_good_flow_on_fresh_samples():
    """lftutor/weights/phi4_L8_m2-4_lam8.pt: small, loads by physics point, ESS well above 0.5."""
    from importlib.resources import files

    from lftutor.training.loop import evaluate
    from lftutor.training.recipes import PRETRAINED, pretrained_flow

    info = PRETRAINED[(8, -4.0, 8.0)]
    assert files("lftutor").joinpath("weights", info.file).stat().st_size < 300_000
    torch.manual_seed(0)
    flow = pretrained_flow(8, -4, 8)
    assert isinstance(flow, Z2Symmetric) and not flow.training
    metrics = evaluate(flow, ScalarPhi4Action(-4, 8), n_samples=4096)
    assert metrics["ess"] > 0.85, metrics  # a fresh flow has ESS ~ 1e-3; these weights ~ 0.94
    phi, log_q = flow.sample(1000)
    assert abs(float((phi.flatten(1).sum(1) > 0).double().mean()) - 0.5) < 0.1  # both signs
    with pytest.raises(ValueError, match="shipped weights"):
        pretrained_flow(16, -4, 8)


def test_odd_spline_recipe_builds_an_even_flow_without_the_mixture():
    """coupling='odd-spline': every layer odd, so log q(-phi) = log q(phi) with one pass."""
    import dataclasses

    from lftutor import Flow
    from lftutor.bijections.odd_splines import OddSplineCoupling, OddZeroModeSpline

    recipe = dataclasses.replace(FAST, name="odd", coupling="odd-spline", z2_symmetric=False)
    torch.manual_seed(0)
    flow = recipe.build_flow((4, 4), dtype=torch.float64)
    assert isinstance(flow, Flow)
    assert [type(layer) for layer in flow.layers] == [OddZeroModeSpline] + [OddSplineCoupling] * FAST.n_layers
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
        phi, log_q = flow.sample(5)
        torch.testing.assert_close(flow.log_prob(phi), log_q)
        torch.testing.assert_close(flow.log_prob(-phi), log_q)
    with pytest.raises(ValueError, match="n_layers >= 3"):
        Recipe("x", coupling="odd-spline", n_layers=2)


def test_four_colour_recipe_builds_the_same_layers_at_every_even_L():
    """L = 6, 10, 14 have no four-colouring of period 4: the colours have seams (zeroed features),
    but the layers and their parameters are those of L = 8, so weights transfer between them."""
    from lftutor.training.transfer import load_transferred

    reference = FAST.build_flow((8, 8))
    shapes = {n: p.shape for n, p in reference.named_parameters()}
    for L in (6, 10, 14):
        flow = FAST.build_flow((L, L))
        assert {n: p.shape for n, p in flow.named_parameters()} == shapes, L
        assert [layer.neighbour_index.shape[1] for layer in flow.flow.layers[1:]] == [8] * 4 + [4]
        load_transferred(flow, reference.state_dict())
        z = torch.randn(3, L, L)
        phi, _ = flow.flow.forward(z)
        torch.testing.assert_close(flow.flow.reverse(phi)[0], z, rtol=0, atol=1e-4)
    # 1-D or odd extents: no four colours, the two halves
    assert [tuple(layer.neighbour_index.shape) for layer in FAST.build_flow((4, 4)).flow.layers[1:-1]] \
        == [(2, 8)] * (FAST.n_layers - 1)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_n_flow_layers_and_the_architecture_say_what_the_recipe_builds(name):
    recipe = RECIPES[name]
    flow = recipe.build_flow((8, 8))
    layers = list((flow.flow if isinstance(flow, Z2Symmetric) else flow).layers)
    assert recipe.n_flow_layers == len(layers)
    assert recipe.architecture((8, 8)).startswith(f"{len(layers)} layers: ")


def test_the_four_colour_couplings_use_a_5x5_window_and_the_odd_one_kernel_size():
    assert FAST.kernel_size == 3 and FAST.n_layers == 5
    layers = list(FAST.build_flow((8, 8)).flow.layers)
    assert [getattr(layer, "kernel_size", None) for layer in layers] == [None, 5, 5, 5, 5, 3]
    assert FAST.architecture((8, 8)) == ("6 layers: a zero-mode spline, 4 spline couplings with kernel 5, "
                                         "1 spline coupling with kernel 3")
    assert FAST.architecture((6, 6)) == FAST.architecture((8, 8))  # four colours with seams on 6x6
    assert FAST.architecture((4,)).endswith("5 spline couplings with kernel 3")  # 1-D: the halves
