import pandas as pd

from panorama_pdac.report_tables import write_html_tables


def test_tables_render_as_html_and_long_lists_are_counted(tmp_path):
    out = tmp_path / "page.html"
    write_html_tables("Data", [("Summary", {"cases": 3, "labels_without_image": [f"c{i}" for i in range(50)]}),
                               ("Folds", pd.DataFrame({"fold": [0, 1], "cases": [2, 1]})),
                               ("Excluded", pd.DataFrame(columns=["case_id"]))], out)
    html = out.read_text()
    assert html.count("<table") == 2 and "<h2>Folds</h2>" in html
    assert "50 in all: c0, c1" in html and "c49" not in html
    assert "none" in html  # the empty table says so
