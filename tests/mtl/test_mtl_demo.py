"""The demo part follows the demo contract (tiny settings, so it is fast here)."""

from tinynet.mtl import demo


def test_demo_returns_the_table_contract():
    table = demo.run(seed=1, verbose=0, n_train=120, epochs=1)
    assert set(table) == {"title", "columns", "rows", "notes"}
    assert all(len(row) == len(table["columns"]) for row in table["rows"])
    names = [row[0] for row in table["rows"]]
    assert names[0].startswith("single-task") and any("MMoE" in n for n in names)
    assert table["rows"][0][3] == "+0.00"  # the baseline against itself
    hard = next(row for row in table["rows"] if row[0].startswith("hard sharing"))
    assert int(hard[4].replace(",", "")) < int(table["rows"][0][4].replace(",", ""))
