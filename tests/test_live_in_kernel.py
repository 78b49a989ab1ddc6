"""LivePlot and ProgressBar inside a real Jupyter kernel: one display handle each, updated in
place; after saving and reopening the notebook, one image and a progress bar that is plain text
(a widget left "Error displaying widget: model not found" in a reopened notebook, issue 10)."""

import nbformat
import pytest
from nbclient import NotebookClient

CODE = """
import torch
from lftutor import Flow, ScalarPhi4Action, SimpleNormal, make_phi4_affine_layers, train
from lftutor.training.live import LivePlot, ProgressBar
torch.manual_seed(0)
flow = Flow(SimpleNormal.standard((4, 4)),
            make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4), hidden_sizes=[4], kernel_size=3))
live = LivePlot(min_interval=0.0)
bar = ProgressBar(mininterval=0.0)
train(flow, ScalarPhi4Action(-4, 8), steps=6, batch_size=8, callbacks=[live, bar])
print("redraws", live.redraws)
"""


@pytest.mark.slow
def test_live_plot_and_progress_bar_leave_one_image_and_text_in_the_saved_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline"), nbformat.v4.new_code_cell(CODE)]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    nbformat.write(nb, tmp_path / "saved.ipynb")
    outputs = nbformat.read(tmp_path / "saved.ipynb", as_version=4).cells[1].outputs  # reopened

    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, [o.get("output_type") for o in outputs]
    assert images[0]["output_type"] == "display_data"
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    redraws = int(text.split("redraws")[1].split()[0])
    assert redraws >= 6  # it really redrew while training (6 steps + final), yet one image remains

    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, "a widget shows 'Error displaying widget: model not found' when reopened"
    bars = [o["data"]["text/plain"] for o in outputs
            if o["output_type"] == "display_data" and "image/png" not in o["data"]]
    assert len(bars) == 1, outputs
    assert bars[0].startswith("training 100%|") and "6/6 steps" in bars[0] and "ESS 0." in bars[0]
    assert "Error" not in bars[0] and "\r" not in bars[0]
