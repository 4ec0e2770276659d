import json
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from inrd import io


def test_save_image_round_trip_and_permissions(tmp_path):
    x = torch.linspace(0, 1, 3 * 5 * 7).reshape(1, 3, 5, 7)
    p = io.save_image(tmp_path / "a.png", x)
    a = np.asarray(Image.open(p))
    assert a.shape == (5, 7, 3)
    assert np.array_equal(a, (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    mode = stat.S_IMODE(os.stat(p).st_mode)
    assert mode & 0o044  # readable by others, not mkstemp's 0600


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "out.png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out.png").write_bytes(b"old")
    with pytest.raises(TypeError):
        io.write_json(tmp_path / "out.png", {"bad": object()})
    assert (tmp_path / "out.png").read_bytes() == b"old"  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_unwritable_destination(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        io.save_image(blocker / "x.png", torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="cannot write to"):
        io.save_image(blocker / "sub" / "x.png", torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="not a folder"):
        io.ensure_writable_dir(blocker)


def test_grid_layout():
    x = torch.stack([torch.full((1, 2, 2), float(i)) for i in range(3)])
    g = io.grid(x, nrow=2, pad=1, value=9.0)
    assert g.shape == (1, 7, 7)
    assert g[0, 1, 1] == 0 and g[0, 1, 4] == 1 and g[0, 4, 1] == 2 and g[0, 4, 4] == 9.0


def test_sidecar(tmp_path):
    io.save_with_sidecar(tmp_path / "s.png", torch.rand(2, 1, 4, 4), {"seed": 3, "sigmas": torch.tensor([0.0, 0.5])})
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["seed"] == 3 and side["sigmas"] == [0.0, 0.5] and "torch" in side["versions"]


def test_load_image(tmp_path):
    x = io.load_image("astronaut", size=32)
    assert x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    full = io.load_image("camera")
    assert full.shape == (1, 1, 512, 512)
    # camera is 8-bit: values are k/255 exactly
    assert torch.allclose(full * 255, (full * 255).round(), atol=1e-4)
    assert io.load_image("camera", channels=3).shape == (1, 3, 512, 512)
    Image.fromarray(np.full((6, 8), 128, np.uint8)).save(tmp_path / "g.png")
    assert torch.allclose(io.load_image(str(tmp_path / "g.png")), torch.full((1, 1, 6, 8), 128 / 255))
    with pytest.raises(ValueError, match="neither a file nor a scikit-image sample"):
        io.load_image("no-such-image")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        io.load_image(str(tmp_path / "bad.png"))
