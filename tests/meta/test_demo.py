"""The ``tinynet demo meta`` part follows the demo contract."""

import numpy as np

from tinynet.meta import demo


def test_demo_returns_a_table_and_maml_adapts(monkeypatch, tmp_path):
    monkeypatch.setattr(demo.tempfile, "gettempdir", lambda: str(tmp_path))
    out = demo.run(seed=0, verbose=0, iterations=300)
    assert set(out) == {"title", "columns", "rows", "notes"}
    assert [row[0] for row in out["rows"]] == [0, 1, 10]
    assert all(len(row) == len(out["columns"]) for row in out["rows"])
    assert all(np.isfinite(row[1]) for row in out["rows"])
    maml_mean = [float(row[3].split("±")[0]) for row in out["rows"]]
    assert maml_mean[2] < maml_mean[1] < maml_mean[0]  # adaptation helps on new sines
