"""LivePlot inside a real Jupyter kernel: one display handle updated in place, one image saved."""

import nbformat
import pytest
from nbclient import NotebookClient

CODE = """
import torch
from lftutor import Flow, ScalarPhi4Action, SimpleNormal, make_phi4_affine_layers, train
from lftutor.training.live import LivePlot
torch.manual_seed(0)
flow = Flow(SimpleNormal.standard((4, 4)),
            make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4), hidden_sizes=[4], kernel_size=3))
live = LivePlot(min_interval=0.0)
train(flow, ScalarPhi4Action(-4, 8), steps=6, batch_size=8, callbacks=[live])
print("redraws", live.redraws)
"""


@pytest.mark.slow
def test_live_plot_keeps_a_single_image_in_the_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline"), nbformat.v4.new_code_cell(CODE)]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[1].outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, [o.get("output_type") for o in outputs]
    assert images[0]["output_type"] == "display_data"
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    redraws = int(text.split("redraws")[1].split()[0])
    assert redraws >= 6  # it really redrew while training (6 steps + final), yet one image remains
