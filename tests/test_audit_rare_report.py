"""The report section of rare-event estimates and trigger search, from results rows only."""

from __future__ import annotations

import pytest

from mindscope.results import Row, to_frame

pytest.importorskip("plotly")


def _rows() -> list[Row]:
    rows = []
    for method, est in (("itgis", 2.1e-6), ("naive", 0.0)):
        for k in range(3):
            rows.append(
                Row(
                    metric="rare_probability",
                    value=est,
                    ci_low=est / 2,
                    ci_high=est * 2 + 1e-7,
                    method=method,
                    split=f"repeat{k}",
                    n=16384,
                    _extra={"truth": 1e-6, "budget": 16384},
                )
            )
        rows.append(
            Row(
                metric="rare_coverage",
                value=1.0,
                method=method,
                split="summary",
                _extra={"truth": 1e-6, "budget": 16384},
            )
        )
    for s in range(2):
        rows += [
            Row(
                metric="trigger_loss_curve",
                value=3.0 / (i + 1),
                method="gcg",
                split=f"seed{s}",
                n=i + 1,
            )
            for i in range(5)
        ]
        rows.append(
            Row(metric="trigger_reasr", value=0.9 + 0.05 * s, method="gcg", split=f"seed{s}")
        )
    rows.append(Row(metric="auroc", value=0.8, method="lr", layer=2))  # another section's row
    return rows


def test_rare_section_draws_estimates_truth_and_loss_curves() -> None:
    from mindscope.report import build_sections
    from mindscope.report.sections.rare import rare_figures, rare_rows

    df = to_frame(_rows())
    sel = rare_rows(df)
    assert "auroc" not in set(sel.metric) and len(sel) == len(df) - 1
    figs = rare_figures(sel)
    titles = [f.layout.title.text for f in figs]
    assert any("vs exact probability" in t for t in titles)
    assert any("loss over steps" in t for t in titles)
    est = next(f for f in figs if "vs exact" in f.layout.title.text)
    names = {tr.name for tr in est.data}
    assert {"itgis", "naive", "exact"} <= names
    itgis = next(tr for tr in est.data if tr.name == "itgis")
    assert list(itgis.y) == pytest.approx([2.1e-6] * 3)
    naive = next(tr for tr in est.data if tr.name == "naive")
    assert min(naive.y) == pytest.approx(1e-12)  # zero estimates drawn at the floor
    curves = next(f for f in figs if "loss over steps" in f.layout.title.text)
    assert len(curves.data) == 2 and list(curves.data[0].y) == pytest.approx(
        [3.0, 1.5, 1.0, 0.75, 0.6]
    )
    assert "rare" in [s.id for s in build_sections(df)]
