"""The recipe of the shipped inrd-small weights: its training stages, rerun by one command.

``inrd train --recipe inrd-small --out DIR`` runs every stage of :data:`INRD_SMALL` in turn, each in
its own folder ``DIR/<stage>`` with :func:`inrd.train.train`, the next stage starting from the
weights the previous one exported. A stage whose folder already holds a training state is resumed
(bit for bit, so a killed rerun continues where it stopped). Each stage's exported weights are then
compared with the sha256 recorded when the shipped weights were made: training is deterministic on
CPU with one thread, so equal hashes show the shipped file is what this code computes. The training
curve of all stages is drawn into ``DIR/training_curve.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional

from . import runs
from .io import save_figure, write_json
from .train import STATE_NAME, train
from .train_export import WEIGHTS_NAME
from .weights import file_sha256

__all__ = ["Stage", "INRD_SMALL", "RECIPES", "run_recipe", "describe", "plot_curve"]


@dataclass(frozen=True)
class Stage:
    """One ``inrd train`` run of a recipe: the options of :func:`inrd.train.train` it sets (a stage after
    the first starts from the previous stage's weights, ``init_weights``) and the sha256 of the weights
    it exported when the shipped file was made."""

    name: str
    iters: int
    seed: int
    lr: float
    warmup: int
    lr_schedule: Literal["constant", "cosine"]
    checkpoint_every: int
    sha256: Optional[str] = None
    batch: int = 32
    size: int = 32
    channels: tuple[int, ...] = (32, 64, 64)

    def options(self) -> dict:
        """The keyword arguments of :func:`inrd.train.train` this stage sets."""
        return {k: v for k, v in asdict(self).items() if k not in ("name", "sha256")}


# Both stages on one CPU thread (a run is deterministic for a fixed thread count, MODEL_CARD.md).
INRD_SMALL = (
    Stage("base", iters=3000, seed=0, lr=5e-4, warmup=200, lr_schedule="constant", checkpoint_every=250,
          sha256="fa20087307e8125305970ca4d6044f5584fb7cf21fb34bb281854af881377e8c"),
    # fine-tune: fresh Adam from the base weights, cosine-decayed lr so that the weights settle
    Stage("fine-tune", iters=2000, seed=1, lr=2e-4, warmup=100, lr_schedule="cosine", checkpoint_every=200,
          sha256="2537d03ae0e9daef47259291dcbe946a9d8f52c4644bc1c96475844cb5e843b6"),
)
RECIPES = {"inrd-small": INRD_SMALL}


def run_recipe(name: str, out, threads: int = 1, progress: bool = True, stages: Optional[tuple[Stage, ...]] = None) -> list[dict]:
    """Run (or resume) every stage of recipe ``name`` under ``out``; per stage: its summary (as
    :func:`inrd.train.train` returns it), the ``weights`` path, the ``expected_sha256`` and ``matches``.

    ``threads`` other than 1 runs the same schedule but, float sums being ordered differently, not the
    same bits. ``stages`` replaces the recipe's own (tests run a shortened copy).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    stages = stages if stages is not None else RECIPES[name]
    params = {"command": "inrd train --recipe", "recipe": name, "stages": [asdict(s) for s in stages]}
    _adopt(Path(out), params, stages)
    results, init = [], None
    # the folder is this recipe's (a rerun resumes it; another recipe or run, or a concurrent rerun, is refused)
    with runs.start_run(out, params, resume=True) as out:
        for stage in stages:
            folder = out / stage.name
            options = {**stage.options(), **({"init_weights": init} if init is not None else {})}
            summary = train(folder, threads=threads, progress=progress, resume=(folder / STATE_NAME).is_file(), **options)
            init = folder / WEIGHTS_NAME
            sha = file_sha256(init)
            results.append({**summary, "stage": stage.name, "weights": str(init), "sha256": sha,
                            "expected_sha256": stage.sha256, "matches": stage.sha256 is None or sha == stage.sha256})
        plot_curve(results, out / "training_curve.png")
    return results


def _adopt(out: Path, params: dict, stages) -> None:
    """A recipe folder written before run folders had a manifest (only stage folders and the curve in it)
    gets one, so that its rerun resumes it instead of refusing a folder of unknown files."""
    if not out.is_dir() or (out / runs.MANIFEST).exists():
        return
    entries = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    if entries and entries <= {s.name for s in stages} | {"training_curve.png"}:
        write_json(out / runs.MANIFEST, {"params": params})


def describe(results: list[dict]) -> str:
    """One line per stage: iterations, time, hash and whether it matches the recorded one."""
    lines = []
    for r in results:
        verdict = "no recorded hash" if r["expected_sha256"] is None else (
            "matches the recorded sha256" if r["matches"] else f"DIFFERS from the recorded {r['expected_sha256'][:12]}")
        lines.append(f"{r['stage']}: {r['iters']} iterations, held-out loss {r['heldout_loss_ema']:.4f}, "
                     f"weights {Path(r['weights'])} sha256 {r['sha256'][:12]}: {verdict}")
    return "\n".join(lines)


def plot_curve(results: list[dict], path) -> Path:
    """Held-out loss (EMA weights, the fixed held-out batch) and training loss against the iteration
    counted over all stages, one colour per stage; PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    offset = 0
    for r in results:
        held = [(offset + i, v) for i, v in r["heldout_history"]]
        train_loss = [(offset + i, v) for i, v in r["loss_history"]]
        line = ax.plot(*zip(*held), marker="o", ms=3, label=f"{r['stage']}: held-out (EMA)")[0]
        ax.plot(*zip(*train_loss), color=line.get_color(), alpha=0.35, lw=1, label=f"{r['stage']}: train (mean of {r['loss_history'][0][0]})")
        offset += r["iters"]
        ax.axvline(offset, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("iteration (all stages)")
    ax.set_ylabel("DDPM loss ||eps - e||^2")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
