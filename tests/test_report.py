"""The HTML report: built from the results table alone, self-contained, one section per analysis."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mindscope.report import (
    build_sections,
    example_table,
    format_summary,
    render_html,
    summarize,
    write_report,
)
from mindscope.report import conventions as conv
from mindscope.results import Row, to_frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return example_table(seed=0, n_layers=4)


@pytest.fixture(scope="module")
def page(table: pd.DataFrame) -> str:
    return render_html(table, title="test run", meta={"run": "20260101-000000-test", "seed": 3})


def test_every_section_present_for_the_example_table(table: pd.DataFrame, page: str) -> None:
    ids = [s.id for s in build_sections(table)]
    assert ids == [
        "lens-kl",
        "trajectory",
        "reporters",
        "transfer",
        "pgr",
        "time",
        "time-layers",
        "audits",
    ]
    for sid in ids:
        assert f"<section id='{sid}'>" in page
    assert "<section id='summary'>" in page


def test_page_is_self_contained(page: str) -> None:
    # Plotly's JS is inlined once, nothing is fetched from the network.
    assert page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    # Outside the inlined library (whose only URL is the unused geo-map topojson default),
    # the page names no network address at all.
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1
    rest = page.replace(get_plotlyjs(), "")
    assert "http://" not in rest and "https://" not in rest and "//cdn" not in rest
    assert "20260101-000000-test" in page


def test_one_plot_div_per_figure(table: pd.DataFrame, page: str) -> None:
    n_figs = sum(len(s.figures) for s in build_sections(table))
    divs = re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', page)
    assert len(divs) == n_figs == len(set(divs))
    # two lenses -> two trajectory heatmaps + one side by side; two transfer methods -> two
    assert sum(d.startswith("fig-trajectory-") for d in divs) == 3
    assert sum(d.startswith("fig-transfer-") for d in divs) == 2


def test_sections_only_when_rows_present() -> None:
    rows = [Row("auroc", 0.5 + 0.1 * k, "lr", k, ci_low=0.4, ci_high=0.9, n=100) for k in range(3)]
    ids = [s.id for s in build_sections(to_frame(rows))]
    assert ids == ["reporters"]
    html = render_html(to_frame(rows))
    assert "<section id='lens-kl'>" not in html and "<section id='reporters'>" in html


def test_empty_table_renders() -> None:
    html = render_html(to_frame([]))
    assert "The results table is empty." in html
    assert "plotly-graph-div" not in html


def test_transfer_cells_are_not_reporter_curves() -> None:
    extra = json.dumps({"train": "alice-easy", "eval": "bob-hard"})
    df = to_frame(
        [
            Row("auroc", 0.9, "lr", 2, extra=extra),
            Row("auroc", 0.8, "lr", 2),
        ]
    )
    assert len(conv.transfer_rows(df)) == 1
    assert len(conv.auroc_rows(df)) == 1
    assert conv.transfer_rows(df)["eval"].tolist() == ["bob-hard"]


def test_time_rows_need_two_steps() -> None:
    one = to_frame([Row("auroc", 0.7, "lr", 1, step=100)])
    assert conv.time_rows(one).empty
    two = to_frame([Row("auroc", 0.7, "lr", 1, step=100), Row("auroc", 0.8, "lr", 1, step=200)])
    assert len(conv.time_rows(two)) == 2


def test_tokens_are_escaped(tmp_path: Path) -> None:
    evil = "</script><img src=x onerror=alert(1)>"
    rows = [
        Row(
            "top_prob",
            0.5,
            "logit_lens",
            layer,
            extra=json.dumps({"position": 0, "token": evil, "input": evil}),
        )
        for layer in range(2)
    ]
    html = write_report(to_frame(rows), tmp_path / "r.html").read_text()
    assert "<section id='trajectory'>" in html
    assert "<img src=x" not in html
    assert evil not in html


def test_summary_picks_min_for_kl_and_max_for_auroc() -> None:
    rows = [Row("kl", v, "tuned", k) for k, v in enumerate([3.0, 1.0, 2.0])]
    rows += [
        Row("auroc", v, "lr", k, ci_low=v - 0.1, ci_high=v + 0.1)
        for k, v in enumerate([0.6, 0.9, 0.7])
    ]
    s = summarize(to_frame(rows)).set_index("metric")
    assert s.loc["kl", "best"] == 1.0 and s.loc["kl", "layer"] == 1
    assert s.loc["kl", "mean"] == pytest.approx(2.0)
    assert s.loc["auroc", "best"] == 0.9 and s.loc["auroc", "layer"] == 1
    assert s.loc["auroc", "ci_low"] == pytest.approx(0.8)
    text = format_summary(summarize(to_frame(rows)))
    assert "auroc" in text and "0.900" in text and "[0.800, 1.000]" in text


def test_summary_kl_leaves_out_the_last_layer() -> None:
    # At the last layer a lens is the model's own output: KL 0 there would always be "best".
    rows = [Row("kl", v, "logit_lens", k) for k, v in enumerate([2.0, 0.5, 0.9, 0.0])]
    s = summarize(to_frame(rows)).set_index("metric")
    assert s.loc["kl", "best"] == 0.5 and s.loc["kl", "layer"] == 1
    assert s.loc["kl", "mean"] == pytest.approx((2.0 + 0.5 + 0.9) / 3)
    assert s.loc["kl", "rows"] == 3
    # a single-layer series keeps its one row
    one = summarize(to_frame([Row("kl", 0.3, "tuned", 5)])).set_index("metric")
    assert one.loc["kl", "best"] == 0.3


def test_summary_leaves_out_trajectory_and_nan(table: pd.DataFrame) -> None:
    s = summarize(table)
    assert "top_prob" not in set(s["metric"])
    # per-position KL rows of the trajectory do not leak into the per-layer KL summary
    kl = s[(s["metric"] == "kl") & (s["method"] == "logit_lens")]
    assert kl["dataset"].tolist() == ["pocket-corpus"]
    per_layer = conv.lens_kl_rows(conv.aggregate_rows(table)).query(
        "method == 'logit_lens' and step == -1"
    )
    # every layer but the last (where a lens is the model itself) is summarised
    assert kl["rows"].tolist() == [len(per_layer) - 1]
    assert not s["best"].isna().any()
    nan_only = to_frame([Row("auroc", math.nan, "lr", 0)])
    assert summarize(nan_only).empty


def test_lower_is_better() -> None:
    assert conv.lower_is_better("kl") and conv.lower_is_better("kl_to_final")
    assert conv.lower_is_better("cross_entropy") and conv.lower_is_better("audit_loss")
    assert not conv.lower_is_better("auroc") and not conv.lower_is_better("pgr")


def test_write_report_is_atomic_and_overwrites(tmp_path: Path, table: pd.DataFrame) -> None:
    out = tmp_path / "sub" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    write_report(table.head(20), out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_report_imports_no_model_store_or_instrument() -> None:
    code = (
        "import sys, mindscope.report as r; r.render_html(r.example_table(n_layers=2));"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(("
        "'mindscope.models', 'mindscope.activations', 'mindscope.lenses', 'mindscope.probes',"
        "'mindscope.organisms', 'transformers'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_by_layer_plots_use_one_checkpoint() -> None:
    from mindscope.report.figures import one_step

    rows = [Row("auroc", 0.9, "lr", k) for k in range(3)]  # final model (step unknown)
    rows += [Row("auroc", 0.6, "lr", 1, step=s) for s in (10, 20)]  # across-time rows
    rows += [Row("auroc", 0.7, "ccs", k, step=s) for k in range(2) for s in (10, 20)]
    kept = one_step(to_frame(rows))
    assert sorted(kept.loc[kept["method"] == "lr", "step"].unique()) == [-1]
    assert sorted(kept.loc[kept["method"] == "ccs", "step"].unique()) == [20]
    assert len(kept) == 3 + 2


def test_lone_transfer_cells_are_not_drawn_as_matrices() -> None:
    def cell(method: str, tr: str, ev: str) -> Row:
        return Row("auroc", 0.7, method, 2, extra=json.dumps({"train": tr, "eval": ev}))

    rows = [cell("lr", a, b) for a in ("x", "y") for b in ("x", "y")] + [cell("random", "x", "y")]
    (section,) = [s for s in build_sections(to_frame(rows)) if s.id == "transfer"]
    titles = [f.layout.title.text for f in section.figures]
    assert len(titles) == 1 and titles[0].startswith("Transfer matrix: lr (layer 2)<br>")
    (alone,) = [s for s in build_sections(to_frame(rows[-1:])) if s.id == "transfer"]
    assert len(alone.figures) == 1


def test_trajectory_cells_show_whitespace_tokens() -> None:
    from mindscope.report.figures import trajectory_figures, visible_token

    assert visible_token("\n") == "↵" and visible_token("\r\n") == "↵"
    assert visible_token(" ") == "␣" and visible_token("  ") == "␣␣"
    assert visible_token("\t") == "⇥" and visible_token(" the") == " the"
    rows = [
        Row("top_prob", 0.4, "logit_lens", layer, extra=json.dumps({"pos": 0, "top_token": tok}))
        for layer, tok in enumerate(["\n", " ", "a"])
    ]
    (fig,) = trajectory_figures(conv.trajectory_rows(to_frame(rows)))
    cells = [row[0] for row in fig.data[0].text]
    assert cells == ["↵", "␣", "a"]


def test_sandbox_section_takes_only_sandbox_rows() -> None:
    import pandas as pd

    from mindscope.report.sandbox import sandbox_figures, sandbox_rows
    from mindscope.results import Row, to_frame

    rows = [
        Row(
            metric="tamper_rate",
            value=0.7,
            ci_low=0.6,
            ci_high=0.8,
            n=10,
            method="q_learning",
            dataset="tomato_watering",
        ),
        Row(
            metric="train_tamper_rate",
            value=0.2,
            ci_low=0.1,
            ci_high=0.3,
            n=10,
            method="q_learning",
            dataset="tomato_watering",
            step=1000,
        ),
        Row(
            metric="auroc_tamper_within_k",
            value=0.9,
            method="ppo",
            dataset="register_tampering",
            layer=1,
            n=100,
            _extra={"k": 4, "site": "hidden1"},
        ),
        Row(metric="auroc", value=0.8, method="lr", dataset="quirky-arith", layer=3, n=50),
        Row(metric="auroc_disagree", value=0.8, method="lr", dataset="quirky-arith", layer=3),
    ]
    df = to_frame(rows)
    picked = sandbox_rows(df)
    assert sorted(picked["metric"]) == ["auroc_tamper_within_k", "tamper_rate", "train_tamper_rate"]
    titles = [f.layout.title.text for f in sandbox_figures(picked)]
    assert len(titles) == 3 and any("within k" in t for t in titles)
    assert sandbox_rows(df[df["dataset"] == "quirky-arith"]).empty
    assert isinstance(picked, pd.DataFrame)


def test_sandbox_bars_keep_runs_of_one_agent_apart() -> None:
    from mindscope.report.sandbox import sandbox_figures
    from mindscope.results import Row, to_frame

    rows = [
        Row(metric="tamper_rate", value=v, method="ppo", dataset="register_tampering", step=s, n=10)
        for v, s in ((0.4, 30_000), (0.9, 100_000))
    ] + [
        Row(
            metric="tamper_rate",
            value=0.0,
            method="coupled_approval",
            dataset="register_tampering",
            split="tamper_on[register_max=2]",
            step=100_000,
        )
    ]
    fig = sandbox_figures(to_frame(rows))[0]
    names = sorted(t.name for t in fig.data)
    assert names == [
        "coupled_approval · tamper_on[register_max=2]",
        "ppo · 100k",
        "ppo · 30k",
    ]
