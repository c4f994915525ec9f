import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_course_has_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name} has outputs in cells {dirty}: clear them (e.g. jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_sliders_redraw_only_on_release(path):
    source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "FloatSlider(" not in source and "IntSlider(" not in source, \
        f"{path.name}: build sliders with iqlkit.widgets (continuous_update=False), not ipywidgets directly"
