"""``mindscope bayes``: score an in-context learner against exact Bayesian posteriors.

    mindscope bayes --model organism:icl-regression --out DIR
    mindscope bayes --model organism:icl-regression-m1024 --tasks pool,scaled,cap --k 32 --out DIR
    mindscope bayes --model organism:icl-hmm --hmms train,heldout --out DIR

A regression model is scored against dMMSE (the posterior over its M pretraining tasks) and
ridge (lambda = s^2, the posterior under w ~ N(0, I)) at every context length; an HMM model by
next-token KL to the training mixture's Bayes predictive and to the true generating HMM, with
ridge reporters from each layer to the exact belief state. Each misspecified test is one option
(--tasks, --noise-std, --noise student_t, --k longer than trained, --hmms heldout). A model that
is not an ICL organism needs --spec FILE.json (its data spec). DIR must not exist (or be
empty); it receives results.parquet, run.json and the curves/simplex artefacts. Across
checkpoints or across M: a `mindscope sweep` config with a `bayes` stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``bayes`` to the top-level sub-command parsers."""
    from mindscope.analyses.bayes import BayesConfig
    from mindscope.cli._stage import add_config_args

    p = subparsers.add_parser(
        "bayes",
        help="score an in-context learner against exact Bayesian posteriors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="organism:icl-regression[-m<M>], organism:icl-hmm, or a model with --spec",
    )
    p.add_argument("--revision", default=None, help="checkpoint (e.g. step512); default final")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument(
        "--spec", default=None, help="JSON file with the data spec of a non-organism model"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation contexts")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    add_config_args(p, BayesConfig, skip=("spec",))
    p.set_defaults(func=_bayes)


def _bayes(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.analyses import CheckContext, run_stage
    from mindscope.analyses.bayes import BayesConfig
    from mindscope.cli._stage import config_from_args
    from mindscope.results import stamp, write_table

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MindscopeError(f"output {out} already exists; refusing to overwrite it")
    spec = None
    if args.spec is not None:
        try:
            spec = json.loads(Path(args.spec).read_text())
        except (OSError, ValueError) as exc:
            raise MindscopeError(f"--spec: cannot read {args.spec} as JSON ({exc})") from None
    cfg = config_from_args(args, BayesConfig, spec=spec)
    cfg = cfg.check(CheckContext(base=Path.cwd(), seed=args.seed, model=args.model), "bayes")
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    res = run_stage("bayes", h, cfg, seed=args.seed)
    df = stamp(res.rows, h)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in res.artefacts.items():
        write(out / name)
    write_table(df, out / "results.parquet")
    run = {
        "command": "bayes",
        "model": h.name,
        "revision": h.revision,
        "seed": args.seed,
        "config": cfg.model_dump(mode="json"),
        **res.info,
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    _summary(df, res.info.get("kind", ""))
    print(f"wrote {out}/results.parquet")
    return 0


def _summary(df: Any, kind: str) -> None:
    from mindscope.results import extra_of

    allk = df[[extra_of(e).get("k") == "all" for e in df["extra"]]]
    if kind == "regression":
        print(
            f"{'tasks':<10}{'model mse':>11}{'dmmse mse':>11}{'ridge mse':>11}"
            f"{'->dmmse':>9}{'->ridge':>9}{'ridge share':>13}"
        )
        for ds, g in df.groupby("dataset", sort=False):
            a = allk[allk["dataset"] == ds]

            def v(method: str, metric: str, frame: Any = a) -> float:
                sel = frame[(frame["method"] == method) & (frame["metric"] == metric)]
                return float(sel["value"].iloc[0]) if len(sel) else float("nan")

            print(
                f"{ds:<10}{v('model', 'mse'):>11.4f}{v('dmmse', 'mse'):>11.4f}"
                f"{v('ridge', 'mse'):>11.4f}{v('dmmse', 'dist'):>9.4f}{v('ridge', 'dist'):>9.4f}"
                f"{v('model', 'ridge_share', g):>13.3f}"
            )
    else:
        print(f"{'hmms':<10}{'KL bayes':>10}{'KL truth':>10}{'toward truth':>14}{'belief R2':>11}")
        for ds, _ in df.groupby("dataset", sort=False):
            a = allk[allk["dataset"] == ds]

            def v(method: str, metric: str, frame: Any = a) -> float:
                sel = frame[(frame["method"] == method) & (frame["metric"] == metric)]
                return float(sel["value"].iloc[0]) if len(sel) else float("nan")

            print(
                f"{ds:<10}{v('bayes', 'kl_next'):>10.4f}{v('truth', 'kl_next'):>10.4f}"
                f"{v('bayes', 'toward_truth'):>14.4f}{v('ridge', 'belief_r2_best'):>11.3f}"
            )
