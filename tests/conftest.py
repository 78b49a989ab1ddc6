import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


# --device / --dtype: where and in what precision the bijection registry suite
# (tests/test_bijections.py) runs. The default is the CPU in float64, where its tolerances are
# set; e.g. `pytest tests/test_bijections.py --device cuda --dtype float32` runs the same cases on
# a GPU with float32 tolerances (a case that is a float64 test by nature is skipped, with why).

def pytest_addoption(parser):
    group = parser.getgroup("lftutor")
    group.addoption("--device", default="cpu",
                    help="torch device of the bijection registry suite: cpu (default), cuda, cuda:1, ...")
    group.addoption("--dtype", default="float64", choices=("float64", "float32"),
                    help="floating dtype of the bijection registry suite (default float64)")


@pytest.fixture(scope="session")
def run_device(request) -> torch.device:
    """The ``--device`` of this run; skips (saying why) where that device is not there."""
    name = request.config.getoption("--device")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise pytest.UsageError(f"--device {name!r}: {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            pytest.skip(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        # The float32 tolerances are those of float32 arithmetic; TF32 (on by default for
        # convolutions) keeps only 10 mantissa bits and would fail them for the wrong reason.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif device.type == "mps" and not torch.backends.mps.is_available():
        pytest.skip(f"--device {name}: MPS is not available on this machine")
    return device


@pytest.fixture(scope="session")
def run_dtype(request) -> torch.dtype:
    """The ``--dtype`` of this run (``torch.float64`` by default)."""
    return getattr(torch, request.config.getoption("--dtype"))
