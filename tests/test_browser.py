"""The report in a real browser: headless Chromium renders every figure with no console error.

Chromium is driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``: the
browser reads JSON commands on fd 3 and writes replies/events on fd 4, each message ended by a
NUL byte), so nothing beyond the standard library is needed and no port is opened. Host name
resolution is disabled, so any attempt to fetch from the network would fail and be seen. A
screenshot is kept under ``test-artifacts/``.

If Chromium is missing the test FAILS (``make browser`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mindscope.report import build_sections, write_report
from mindscope.testing import example_table

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str:
    """Path of the Chromium binary (``$MINDSCOPE_CHROMIUM`` first); fails the test if none."""
    env = os.environ.get("MINDSCOPE_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "chromium not found (looked for $MINDSCOPE_CHROMIUM and "
        f"{', '.join(CHROMIUM_NAMES)} on PATH): the report's browser test needs it; "
        "run `make browser` or `apt-get install chromium`",
        pytrace=False,
    )


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._profile = tempfile.mkdtemp(prefix="mindscope-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        # The child's ends go above fd 10, so that moving them to fds 3 and 4 clobbers nothing.
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(resp_w)

        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no network, even if something tried
            f"--user-data-dir={self._profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # bash puts the pipe ends on fds 3 and 4 and execs chromium (no preexec_fn, which is
        # unsafe when the test process has threads).
        script = f'exec 3<&{hi_r} 4>&{hi_w} {hi_r}<&- {hi_w}>&-; exec "$@"'
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["bash", "-c", script, "chromium", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            pass_fds=(hi_r, hi_w),
        )
        os.close(hi_r)
        os.close(hi_w)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._resp_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._queue.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._queue.put(json.loads(msg))

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send one command and wait for its reply (events meanwhile go to ``self.events``)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._get(deadline, f"reply to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _get(self, deadline: float, what: str) -> dict[str, Any]:
        try:
            msg = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"chromium: no {what} in {self.timeout:.0f} s") from None
        if msg is None:
            raise RuntimeError(f"chromium exited before the {what}: {self.stderr_tail()}")
        return msg

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until an event ``method`` has arrived; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("method") == method:
                    return ev
            self.events.append(self._get(deadline, f"{method} event"))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    os.write(
                        self._cmd_w,
                        json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0",
                    )
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._cmd_w, self._resp_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            out.append(f"console.{p['type']}: {args}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log {e.get('source')}: {e.get('text')} {e.get('url', '')}")
    return out


FIGURES_DRAWN = """
JSON.stringify(Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
  id: d.id,
  svg: d.querySelectorAll('.main-svg').length,
  traces: d.querySelectorAll('.trace, .hm, .heatmaplayer image, .bars .point').length,
  height: d.getBoundingClientRect().height
})))
"""


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = find_chromium()
    table = example_table(seed=1)
    expected = [f"fig-{s.id}-{i}" for s in build_sections(table) for i in range(len(s.figures))]
    report = write_report(
        table,
        tmp_path / "report.html",
        title="mindscope · browser test",
        meta={"run": "browser-test"},
    )
    browser = Chromium(binary)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": report.as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=60)

        drawn: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res = browser.send(
                "Runtime.evaluate",
                {"expression": FIGURES_DRAWN, "returnByValue": True},
                session=session,
            )
            drawn = json.loads(res["result"]["value"])
            if len(drawn) == len(expected) and all(d["svg"] > 0 for d in drawn):
                break
            time.sleep(0.2)

        height = browser.send(
            "Runtime.evaluate",
            {"expression": "document.documentElement.scrollHeight", "returnByValue": True},
            session=session,
        )["result"]["value"]
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": int(height), "scale": 1},
            },
            session=session,
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = base64.b64decode(shot["data"])
        (ARTIFACTS / "report.png").write_bytes(png)
        summary_rows = browser.send(
            "Runtime.evaluate",
            {
                "expression": "document.querySelectorAll('table.summary tbody tr').length",
                "returnByValue": True,
            },
            session=session,
        )["result"]["value"]
        events = list(browser.events)
    finally:
        browser.close()

    assert _errors(events) == []
    assert [d["id"] for d in drawn] == expected
    not_drawn = [d["id"] for d in drawn if d["svg"] == 0 or d["traces"] == 0 or d["height"] < 100]
    assert not_drawn == [], f"figures that did not draw: {not_drawn}"
    requests = [
        ev["params"]["request"]["url"]
        for ev in events
        if ev.get("method") == "Network.requestWillBeSent"
    ]
    remote = [u for u in requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert remote == [], f"the report fetched from the network: {remote}"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert int(height) > 2000
    assert summary_rows >= 10


def screenshot(report: Path, png: Path, max_height: int = 2200) -> tuple[int, list[str]]:
    """Render ``report`` 1280 px wide, save the top ``max_height`` px as ``png``; returns the
    number of figures drawn and the console errors. ``python tests/test_browser.py REPORT PNG``."""
    browser = Chromium(find_chromium())
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": report.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=60)
        time.sleep(2)

        def js(expr: str) -> Any:
            res = browser.send(
                "Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session
            )
            return res["result"]["value"]

        drawn = json.loads(js(FIGURES_DRAWN))
        height = min(int(js("document.documentElement.scrollHeight")), max_height)
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
            },
            session=session,
        )
        png.write_bytes(base64.b64decode(shot["data"]))
        return sum(d["svg"] > 0 for d in drawn), _errors(browser.events)
    finally:
        browser.close()


if __name__ == "__main__":  # pragma: no cover
    import sys

    n, errs = screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{n} figures drawn; console errors: {errs}")


HEADLINE_CELLS = """
JSON.stringify((() => {
  const sec = document.querySelector("section#headline");
  if (!sec) return null;
  const head = Array.from(sec.querySelectorAll("thead th")).map(th => th.textContent);
  return Array.from(sec.querySelectorAll("tbody tr")).map(tr => {
    const cells = Array.from(tr.querySelectorAll("td")).map(td => td.textContent);
    return Object.fromEntries(head.map((h, i) => [h, cells[i]]));
  });
})())
"""


def _rendered_headline(report: Path) -> list[dict[str, str]]:
    """The headline table's rows as the browser shows them (header -> cell text)."""
    browser = Chromium(find_chromium())
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": report.as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout=60)
        res = browser.send(
            "Runtime.evaluate", {"expression": HEADLINE_CELLS, "returnByValue": True},
            session=session,
        )  # fmt: skip
        return json.loads(res["result"]["value"])
    finally:
        browser.close()


def test_every_headline_number_in_chromium_is_the_parquet_row(tmp_path: Path) -> None:
    """Render the report of an elicit run on a tiny quirky organism in headless Chromium and
    check every number of the headline table against a direct query of results.parquet (read
    with pandas, ``extra`` parsed with json): the number shown is the quantity its row names."""
    import pandas as pd
    from sweep_helpers import make_series

    import mindscope as ms
    from mindscope.analyses import run_stage
    from mindscope.results import write_table

    h = ms.load_model(str(make_series(tmp_path / "q") / "step12"))
    cfg = {"dataset": "quirky-arith", "n": 240, "n_test": 240, "read": "prompt",
           "methods": ["lr", "diffmean", "random"], "n_boot": 20}  # fmt: skip
    parquet = write_table(run_stage("elicit", h, cfg, seed=0).rows, tmp_path / "results.parquet")
    report = write_report(ms.results.read_table(parquet), tmp_path / "report.html")
    shown = _rendered_headline(report)
    assert shown, "no headline table in the page"

    df = pd.read_parquet(parquet)
    ex = [json.loads(e) if isinstance(e, str) and e else {} for e in df["extra"]]
    df["x_train"] = [e.get("train", "") for e in ex]

    def one(metric: str, method: str, **where: object) -> pd.Series:
        sub = df[(df.metric == metric) & (df.method == method)]
        for k, v in where.items():
            sub = sub[sub[k] == v]
        assert len(sub) >= 1, (metric, method, where)
        return sub

    checked = 0
    for row in shown:
        result, method, value = row["result"], row["method"], float(row["value"])
        if result.startswith("AUROC vs truth, test split") or "reporter fitted on" in result:
            # the layer chosen on held-out training data (test split) or on validation
            # (transfer): the selected row, the fitted reporter's own number at that layer
            split = "test" if result.startswith("AUROC vs truth, test split") else "bob-hard"
            r = one("auroc_selected", method, split=split).iloc[0]
            assert value == pytest.approx(r.value, abs=5e-4)
            assert row["where"].startswith(f"layer {int(r.layer)} ")
            assert int(row["n"]) == int(r.n)
            same = one("auroc", method, split=split, layer=int(r.layer))
            assert (same.value - r.value).abs().min() < 1e-9
            p95 = one("auroc_null_p95", method, split=split).value.iloc[0]
            p = one("null_pvalue", method, split=split).value.iloc[0]
            assert (
                f"p95 {p95:.3f}" in row["against chance"]
                and f"p = {p:.3f}" in row["against chance"]
            )
        elif result.startswith("fraction of the gap recovered"):
            r = one("gap_recovered_selected", method).iloc[0]
            assert value == pytest.approx(r.value, abs=5e-4)
            e = json.loads(r.extra)
            assert f"constant probe {e['chance']:.3f}" in row["against chance"]
        elif "the model's own answers" in result:
            r = one("gap_recovered_selected", "lr").iloc[0]
            assert value == pytest.approx(json.loads(r.extra)["lm_auroc_bob"], abs=5e-4)
        elif result.startswith("AUROC vs truth, test examples where the persona lies"):
            sub = one("auroc_disagree", method, split="test")
            assert value == pytest.approx(sub[sub.layer >= 0].value.max(), abs=5e-4)
        else:
            raise AssertionError(f"a headline row this test does not know: {result!r}")
        checked += 1
    kinds = {r["result"].split(",")[0] for r in shown}
    assert checked == len(shown) and {"AUROC vs truth", "fraction of the gap recovered"} <= kinds
