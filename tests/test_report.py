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

from mindscope.report import build_sections, format_summary, render_html, summarize, write_report
from mindscope.report.rows import aggregate_rows, time_rows
from mindscope.report.sections.lens_kl import lens_kl_rows
from mindscope.report.sections.reporters import auroc_rows
from mindscope.report.sections.transfer import transfer_rows
from mindscope.results import Row, to_frame
from mindscope.testing import example_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return example_table(seed=0, n_layers=4)


@pytest.fixture(scope="module")
def page(table: pd.DataFrame) -> str:
    return render_html(table, title="test run", meta={"run": "20260101-000000-test", "seed": 3})


def test_every_section_present_for_the_example_table(table: pd.DataFrame, page: str) -> None:
    ids = [s.id for s in build_sections(table)]
    assert ids == [
        "headline",
        "lens-kl",
        "trajectory",
        "reporters",
        "transfer",
        "pgr",
        "time",
        "time-layers",
        "audits",
        "summary",
    ]
    for sid in ids:
        assert f"<section id='{sid}'>" in page


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
    assert ids == ["reporters", "summary"]
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
    assert len(transfer_rows(df)) == 1
    assert len(auroc_rows(df)) == 1
    assert transfer_rows(df)["eval"].tolist() == ["bob-hard"]


def test_time_rows_need_two_steps() -> None:
    one = to_frame([Row("auroc", 0.7, "lr", 1, step=100)])
    assert time_rows(one).empty
    two = to_frame([Row("auroc", 0.7, "lr", 1, step=100), Row("auroc", 0.8, "lr", 1, step=200)])
    assert len(time_rows(two)) == 2


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
    per_layer = lens_kl_rows(aggregate_rows(table)).query("method == 'logit_lens' and step == -1")
    # every layer but the last (where a lens is the model itself) is summarised
    assert kl["rows"].tolist() == [len(per_layer) - 1]
    # only a metric with no better side (here the audit's disagreement rate) has no best value
    from mindscope.metrics_catalog import better_direction

    no_side = s["metric"].map(better_direction) == "none"
    assert set(s.loc[no_side, "metric"]) == {"audit_disagreement_rate"}
    assert s.loc[no_side, "best"].isna().all() and not s.loc[~no_side, "best"].isna().any()
    assert not s["mean"].isna().any()
    nan_only = to_frame([Row("auroc", math.nan, "lr", 0)])
    assert summarize(nan_only).empty


def test_lower_is_better() -> None:
    from mindscope.metrics_catalog import lower_is_better

    assert lower_is_better("kl") and lower_is_better("kl_to_final")
    assert lower_is_better("cross_entropy") and lower_is_better("audit_loss")
    assert not lower_is_better("auroc") and not lower_is_better("pgr")


def test_write_report_is_atomic_and_overwrites(tmp_path: Path, table: pd.DataFrame) -> None:
    out = tmp_path / "sub" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    write_report(table.head(20), out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_report_imports_no_model_store_or_instrument() -> None:
    code = (
        "import sys, mindscope.report as r, mindscope.testing as t;"
        "r.render_html(t.example_table(n_layers=2));"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(("
        "'mindscope.models', 'mindscope.activations', 'mindscope.lenses', 'mindscope.probes',"
        "'mindscope.organisms', 'transformers'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_by_layer_plots_use_one_checkpoint() -> None:
    from mindscope.report.plot import one_step

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
    from mindscope.report.sections.trajectory import (
        trajectory_figures,
        trajectory_rows,
        visible_token,
    )

    assert visible_token("\n") == "↵" and visible_token("\r\n") == "↵"
    assert visible_token(" ") == "␣" and visible_token("  ") == "␣␣"
    assert visible_token("\t") == "⇥" and visible_token(" the") == " the"
    rows = [
        Row("top_prob", 0.4, "logit_lens", layer, extra=json.dumps({"pos": 0, "top_token": tok}))
        for layer, tok in enumerate(["\n", " ", "a"])
    ]
    (fig,) = trajectory_figures(trajectory_rows(to_frame(rows)))
    cells = [row[0] for row in fig.data[0].text]
    assert cells == ["↵", "␣", "a"]


def test_sandbox_section_takes_only_sandbox_rows() -> None:
    import pandas as pd

    from mindscope.report.sections.sandbox import sandbox_figures, sandbox_rows
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
    from mindscope.report.sections.sandbox import sandbox_figures
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


# ---- one name and one direction per metric ----------------------------------------------------


def test_metric_catalogue_directions_and_lookup() -> None:
    from mindscope.metrics_catalog import better_direction, display_name, metric_info

    higher = ["auroc", "auroc_bob", "auroc_disagree", "val_auroc", "acc", "cal_acc_bob", "pgr"]
    lower = ["kl", "kl_to_final", "ce", "loss", "trigger_loss_curve", "ece", "ece_bob", "brier"]
    lower += ["train_tamper_rate", "audit_monitor_fpr", "my_new_error"]
    assert {m: better_direction(m) for m in higher} == dict.fromkeys(higher, "higher")
    assert {m: better_direction(m) for m in lower} == dict.fromkeys(lower, "lower")
    assert better_direction("audit_recall@0.01fpr") == "higher"
    assert better_direction("audit_precision@50") == "higher"
    cov = metric_info("rare_coverage")
    assert cov.better == "closer" and cov.target == 0.95
    assert metric_info("cal_acc").chance == "base rate" and metric_info("auroc").chance == 0.5
    assert better_direction("rare_probability") == "none"
    assert display_name("ece") == "expected calibration error"
    assert display_name("auroc_bob") == "AUROC (bob)"


def test_best_follows_the_direction_and_the_tie_rule() -> None:
    from mindscope.errors import MindscopeError
    from mindscope.metrics_catalog import best

    def rows(metric: str, values: list[float]) -> pd.DataFrame:
        return to_frame([Row(metric, v, "lr", k) for k, v in enumerate(values)])

    assert best(rows("auroc", [0.6, 0.9, 0.7]))["layer"] == 1
    assert best(rows("ece", [0.2, 0.05, 0.1]))["layer"] == 1  # lower, not the maximum
    assert best(rows("ce", [3.0, 2.0, 2.5]))["layer"] == 1
    assert best(rows("rare_coverage", [0.5, 1.0, 0.93]))["layer"] == 2  # closest to 0.95
    # ties: the lowest layer wins whatever the row order; NaN never wins
    tied = to_frame(
        [Row("auroc", 0.8, "lr", k) for k in (3, 1, 2)] + [Row("auroc", math.nan, "x", 0)]
    )
    assert best(tied)["layer"] == 1
    steps = to_frame([Row("kl", 1.0, "tuned_lens", 2, step=s) for s in (500, 100)])
    assert best(steps)["step"] == 100
    with pytest.raises(MindscopeError, match="several metrics"):
        best(pd.concat([rows("auroc", [0.5]), rows("kl", [1.0])]))
    with pytest.raises(MindscopeError, match="no better side"):
        best(rows("rare_probability", [1e-6]))
    with pytest.raises(MindscopeError, match="no rows"):
        best(rows("auroc", [math.nan]))


def test_summary_uses_the_catalogue_direction() -> None:
    # ECE and a loss curve are lower-is-better; the old rule took their maximum
    rows = [Row("ece", v, "lr", k) for k, v in enumerate([0.3, 0.1, 0.2])]
    rows += [Row("trigger_loss_curve", v, "gcg", -1, n=k + 1) for k, v in enumerate([4.0, 1.0])]
    rows += [Row("cal_acc", v, "lr", k) for k, v in enumerate([0.6, 0.8, 0.8])]
    s = summarize(to_frame(rows)).set_index("metric")
    assert s.loc["ece", "best"] == pytest.approx(0.1) and s.loc["ece", "layer"] == 1
    assert s.loc["trigger_loss_curve", "best"] == pytest.approx(1.0)
    assert s.loc["cal_acc", "best"] == pytest.approx(0.8) and s.loc["cal_acc", "layer"] == 1


def test_terminal_headline_numbers_use_the_same_best() -> None:
    from mindscope.runs.outputs import headline_numbers

    rows = [Row("auroc", v, m, k, split="test", n=100) for m, k, v in
            (("lr", 3, 0.9), ("ccs", 1, 0.9), ("lda", 0, 0.7), ("random", 2, 0.95))]  # fmt: skip
    rows += [Row("kl", v, "tuned_lens", k) for k, v in enumerate([2.0, 1.0, 0.0])]
    nums = headline_numbers(to_frame(rows))
    assert nums["best test auroc"] == "0.900 (ccs L1, n=100)"  # tie: the lower layer
    assert nums["tuned kl"] == "1.500 nats (mean over layers)"  # the last layer left out


# ---- one colour per method ----------------------------------------------------------------------


def test_known_methods_have_distinct_colours_and_unknown_ones_never_collide() -> None:
    from mindscope.report import plot

    known = list(plot.METHOD_COLOURS)
    assert len(set(plot.METHOD_COLOURS.values())) == len(known)
    assert not set(plot.FALLBACK_COLOURS) & set(plot.METHOD_COLOURS.values())
    unknown = [f"{m}:shuffled" for m in known] + [f"detector{i}" for i in range(40)]
    both = known + unknown
    colours = plot.assign_colours(both)
    assert len(set(colours.values())) == len(both)  # no two methods share a colour
    assert all(colours[m] == plot.METHOD_COLOURS[m] for m in known)  # the table is kept
    assert plot.assign_colours(reversed(both)) == colours  # only the set matters
    assert plot.assign_colours(["logit", "lr"])["logit"] == plot.METHOD_COLOURS["logit_lens"]
    with plot.method_palette(["lr", "lr:shuffled", "diffmean:shuffled"]) as active:
        assert plot.method_colour("diffmean:shuffled") == active["diffmean:shuffled"]
        assert plot.method_colour("diffmean:shuffled") != plot.method_colour("lr")


def test_each_method_keeps_one_colour_across_the_whole_report() -> None:
    extra = [
        Row("auroc", 0.6, m, k, split="test") for m in ("lr:shuffled", "lof", "que") for k in (0, 1)
    ]
    table = pd.concat([example_table(seed=0, n_layers=3), to_frame(extra)], ignore_index=True)
    colours: dict[str, set[str]] = {}
    for s in build_sections(table):
        if s.id not in ("lens-kl", "reporters", "pgr", "time"):
            continue
        for fig in s.figures:
            for tr in fig.data:
                if getattr(tr, "mode", None) == "lines+markers":
                    method = str(tr.name).split(" · ")[0]
                    colours.setdefault(method, set()).add(tr.line.color)
    assert all(len(c) == 1 for c in colours.values()), colours
    flat = [next(iter(c)) for c in colours.values()]
    assert len(set(flat)) == len(flat), colours  # no two methods share one
    assert {"lr", "lr:shuffled", "lof", "que", "tuned_lens", "logit_lens"} <= set(colours)


# ---- the registry and the package's import rules ---------------------------------------------


def test_a_new_section_is_one_registration() -> None:
    from mindscope.errors import MindscopeError
    from mindscope.report import Content, register, registered
    from mindscope.report.registry import unregister

    def steering_rows(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["metric"] == "steering_effect"]

    register(
        "steering",
        order=55,
        title="Interventions: steering",
        caption="Effect of adding the steering vector.",
        select=steering_rows,
        render=lambda rows: Content(caption="", table=rows[["layer", "value"]]),
    )
    try:
        with pytest.raises(MindscopeError, match="already registered"):
            register("steering", order=1, title="", caption="", select=steering_rows, render=list)
        df = to_frame([Row("steering_effect", 0.3, "caa", 2), Row("auroc", 0.7, "lr", 2)])
        ids = [s.id for s in build_sections(df)]
        assert ids.index("reporters") < ids.index("steering") < ids.index("summary")
        page = render_html(df)
        assert "<section id='steering'>" in page and "Effect of adding the steering" in page
        assert "steering" not in [s.id for s in build_sections(df[df["metric"] == "auroc"])]
        assert [s.order for s in registered()] == sorted(s.order for s in registered())
    finally:
        unregister("steering")
    assert "steering" not in [s.name for s in registered()]
    with pytest.raises(MindscopeError, match="lower-case"):
        register("Bad Name", order=1, title="", caption="", select=steering_rows, render=list)


def _report_modules() -> dict[str, Path]:
    import mindscope.report as pkg

    root = Path(pkg.__file__).parent
    out = {}
    for p in root.rglob("*.py"):
        parts = p.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out[".".join(("mindscope", "report", *parts))] = p
    return out


def test_report_package_has_no_cycles_and_no_private_imports() -> None:
    import ast

    modules = _report_modules()
    graph: dict[str, set[str]] = {}
    plotly_users = set()
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        deps = graph.setdefault(name, set())
        imported_modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("mindscope.report"):
                    for alias in node.names:
                        assert not alias.name.startswith("_"), f"{name} imports {alias.name}"
                        sub = f"{node.module}.{alias.name}"
                        deps.add(sub if sub in modules else node.module)
                        if sub in modules:
                            imported_modules.add(alias.asname or alias.name)
                if node.module.startswith("plotly"):
                    plotly_users.add(name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("plotly"):
                        plotly_users.add(name)
                    if alias.name.startswith("mindscope.report"):
                        deps.add(alias.name)
        deps.discard(name)
        private = [
            f"{n.value.id}.{n.attr}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in imported_modules
            and n.attr.startswith("_")
        ]
        assert not private, f"{name} uses private names of other modules: {private}"
    assert plotly_users == {"mindscope.report.plot"}
    sections = {n for n in modules if n.startswith("mindscope.report.sections.")}
    for s in sections:  # a section imports no other section
        assert not (graph[s] & sections), (s, graph[s] & sections)
    # the package's __init__ re-exports; every other edge must form no cycle
    edges = {n: {d for d in ds if d != "mindscope.report"} for n, ds in graph.items()}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in edges.get(n, ()):
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*path, n, d])}"
            if d not in state:
                visit(d, [*path, n])
        state[n] = 2

    for n in edges:
        if n not in state:
            visit(n, [])
    assert len(sections) >= 12 and "mindscope.report.registry" in graph
