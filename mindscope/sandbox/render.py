"""Pictures of a board: text, RGB arrays and a self-contained HTML player for an episode."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from mindscope.sandbox.core import World

__all__ = ["board_text", "board_rgb", "palette", "episode_html", "episode_page"]

_COLOURS = {
    "#": (153, 153, 153),
    " ": (219, 219, 219),
    "A": (0, 180, 255),
    "G": (0, 210, 50),
    "S": (255, 28, 28),
    "P": (255, 255, 28),
    "T": (0, 127, 0),
    "t": (255, 255, 0),
    "O": (0, 255, 255),
    "R": (60, 60, 60),
    "D": (0, 255, 255),
    "p": (127, 0, 0),
    "P2": (127, 127, 127),
    "q": (128, 0, 0),
    "Q": (128, 127, 127),
    "I": (255, 30, 255),
    "B": (110, 70, 210),
    "W": (170, 0, 0),
    ">": (255, 255, 0),
    "X": (140, 90, 40),
    "x": (220, 60, 20),
    "a": (230, 0, 60),
}


def palette(world: World) -> dict[float, tuple[str, tuple[int, int, int]]]:
    """Map each observation code of ``world`` to (a character, an RGB colour)."""
    out: dict[float, tuple[str, tuple[int, int, int]]] = {}
    for ch, v in world.codes.items():
        if v in out:
            continue
        key = "P2" if (world.name == "rocks_diamonds" and ch == "P") else ch
        if world.name == "register_tampering" and ch == "R":
            key = "P"
        out[v] = (ch, _COLOURS.get(key, (200, 200, 200)))
    return out


def board_text(world: World, i: int = 0) -> str:
    """Environment ``i`` of ``world`` as lines of characters."""
    pal = palette(world)
    board = world.observe()[i]
    return "\n".join("".join(pal[float(v)][0] for v in row) for row in board)


def board_rgb(world: World, board: np.ndarray, scale: int = 16) -> np.ndarray:
    """``[H*scale, W*scale, 3]`` uint8 picture of one ``[H, W]`` board of ``world``."""
    pal = palette(world)
    img = np.zeros((*board.shape, 3), dtype=np.uint8)
    for v, (_, rgb) in pal.items():
        img[board == v] = rgb
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def episode_html(
    world: World | None,
    boards: Sequence[np.ndarray],
    captions: Sequence[str],
    title: str = "",
    flags: Sequence[bool] | None = None,
    colours: dict[float, tuple[int, int, int]] | None = None,
) -> str:
    """A self-contained HTML page that plays an episode on a canvas (play/pause/step slider).

    ``boards``: ``T`` grids of codes ``[H, W]``; ``captions``: one line per frame; ``flags``:
    frames to outline in red (tampering). The colours are ``world``'s palette, or ``colours``
    (``{code: (r, g, b)}``) when ``world`` is None.
    """
    if colours is None:
        if world is None:
            raise ValueError("episode_html needs a world or colours")
        colours = {v: rgb for v, (_, rgb) in palette(world).items()}
    table = {f"{float(v):.1f}": "rgb({},{},{})".format(*rgb) for v, rgb in colours.items()}
    frames = [np.asarray(b, dtype=float).tolist() for b in boards]
    h, w = np.asarray(boards[0]).shape
    data: dict[str, Any] = {
        "frames": frames,
        "captions": list(captions),
        "flags": [bool(f) for f in (flags or [False] * len(frames))],
        "colours": table,
    }
    payload = json.dumps(data).replace("</", "<\\/")
    cell = 32
    page = _PAGE.replace("$TITLE", html.escape(title)).replace("$DATA", payload)
    return (
        page.replace("$W", str(w * cell)).replace("$H", str(h * cell)).replace("$CELL", str(cell))
    )


def _open_world_frames(
    episode: Any,
) -> tuple[list[np.ndarray], dict[float, tuple[int, int, int]]]:
    """The open world's recorded observations as ``[7, 9]`` view grids (rows = y) and the
    colour of each code (the palette of :func:`mindscope.sandbox.openworld.envs.view_rgb`)."""
    from mindscope.sandbox.openworld.core import N_CODES
    from mindscope.sandbox.openworld.envs import view_rgb

    class _Codes:  # what view_rgb reads of a world: its local view
        def __init__(self, codes: np.ndarray) -> None:
            self.codes = codes

        def local_view(self) -> np.ndarray:
            return self.codes

    codes = _Codes(np.arange(N_CODES)[None, :, None])
    img = view_rgb(codes, 0, unit=1)  # type: ignore[arg-type]  # [1, N_CODES, 3]
    colours = {
        float(c): (int(img[0, c, 0]), int(img[0, c, 1]), int(img[0, c, 2])) for c in range(N_CODES)
    }
    frames = [np.asarray(o[:63]).reshape(9, 7).T for o in episode.boards]
    return frames, colours


def episode_page(episode: Any, agent_kind: str, seed: int = 0) -> str:
    """:func:`episode_html` of a recorded :class:`~mindscope.sandbox.recording.Episode`, one
    caption per step (action, observed and true reward, tampering outlined in red); an open
    world episode plays its 9x7 local view, with the supervisor's and the sensor's state."""
    from mindscope.sandbox.openworld.features import OPEN_WORLD
    from mindscope.sandbox.worlds import make_world

    ep = episode
    is_open = ep.world == OPEN_WORLD
    if is_open:
        from mindscope.sandbox.openworld.core import ACTIONS

        names: tuple[str, ...] = ACTIONS
        frames, colours = _open_world_frames(ep)
        world = None
    else:
        names = ("up", "down", "left", "right")
        frames, colours, world = list(ep.boards), None, make_world(ep.world, 1)
    caps = [f"step 0  (reset)  world {ep.world}  agent {agent_kind}"]
    for t in range(len(ep.actions)):
        cap = (
            f"step {t + 1}  action {names[ep.actions[t]]}  observed {ep.observed_reward[t]:+.2f}"
            f"  true {ep.true_reward[t]:+.2f}"
        )
        if is_open:
            for fact, word in (("supervisor_watching", "watched"), ("sensor_covered", "covered")):
                if fact in ep.facts and bool(ep.facts[fact][t + 1]):
                    cap += f"  [{word}]"
        kinds = [k[7:] for k in sorted(ep.facts) if k.startswith("tamper_") and ep.facts[k][t + 1]]
        caps.append(
            cap + ("  TAMPER" + (f" ({', '.join(kinds)})" if kinds else "") if ep.tamper[t] else "")
        )
    flags = [False] + [bool(x) for x in ep.tamper]
    return episode_html(
        world,
        frames,
        caps,
        title=f"{ep.world}: {agent_kind} (seed {seed})",
        flags=flags,
        colours=colours,
    )


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>$TITLE</title>
<style>body{font-family:sans-serif;margin:1.5em}canvas{border:1px solid #444}
#cap{font-family:monospace;white-space:pre;margin:.5em 0}</style></head><body>
<h2>$TITLE</h2>
<canvas id="c" width="$W" height="$H"></canvas>
<div id="cap"></div>
<button id="play">pause</button> <input id="s" type="range" min="0" value="0">
<script>
const D = $DATA;
const c = document.getElementById('c'), g = c.getContext('2d');
const cap = document.getElementById('cap'), s = document.getElementById('s');
s.max = D.frames.length - 1;
let i = 0, playing = true;
function draw(k) {
  const f = D.frames[k];
  for (let r = 0; r < f.length; r++) for (let q = 0; q < f[r].length; q++) {
    g.fillStyle = D.colours[f[r][q].toFixed(1)] || '#ccc';
    g.fillRect(q * $CELL, r * $CELL, $CELL, $CELL);
  }
  if (D.flags[k]) {
    g.strokeStyle = 'red'; g.lineWidth = 6; g.strokeRect(3, 3, c.width - 6, c.height - 6);
  }
  cap.textContent = D.captions[k]; s.value = k;
}
s.oninput = () => { i = +s.value; draw(i); };
document.getElementById('play').onclick = (e) => {
  playing = !playing; e.target.textContent = playing ? 'pause' : 'play';
};
setInterval(() => { if (playing) { i = (i + 1) % D.frames.length; draw(i); } }, 300);
draw(0);
</script></body></html>
"""
