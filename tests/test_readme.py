"""The README's integration examples run as written (offline: a tiny random-weight diffusers pipeline,
inrd's bundled FFDNet and a scikit-image photograph)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def code_block(heading: str) -> str:
    """The first ```python block of the README section titled ``heading``."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no python block under '## {heading}'"
    return blocks[0]


def test_readme_diffusers_example_runs_inrd_in_the_pipeline():
    namespace: dict = {}
    exec(compile(code_block("INRD in your diffusers pipeline"), "README.md", "exec"), namespace)
    pipe, images = namespace["pipe"], namespace["images"]
    assert type(pipe.scheduler).__name__ == "INRDScheduler" and pipe.scheduler.config.relaxation == "ind"
    assert len(images) == 2 and pipe.scheduler.num_inference_steps == 10


def test_readme_deepinv_example_restores_the_photograph():
    import deepinv as dinv

    namespace: dict = {}
    exec(compile(code_block("inrd denoisers in deepinv"), "README.md", "exec"), namespace)
    x, y, x_hat = namespace["x"], namespace["y"], namespace["x_hat"]
    psnr = dinv.metric.PSNR()
    # the README quotes 22.9 -> 28.9 dB; tests/denoisers/test_deepinv_interop.py holds the threshold
    # (the oracle Tikhonov filter); here: DPIR restores at all
    assert psnr(x_hat, x).item() > psnr(y, x).item()
