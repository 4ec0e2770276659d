import json
import math
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
    # camera is 8-bit: values are float32(k/255), and float32(float32(k/255) * 255) is within 2 * 255 * 2^-24
    # of the integer k (two roundings of relative size 2^-24 each, on values up to 255)
    assert torch.allclose(full * 255, (full * 255).round(), rtol=0, atol=2 * 255 * 2.0**-24)
    assert io.load_image("camera", channels=3).shape == (1, 3, 512, 512)
    Image.fromarray(np.full((6, 8), 128, np.uint8)).save(tmp_path / "g.png")
    assert torch.equal(io.load_image(str(tmp_path / "g.png")), torch.full((1, 1, 6, 8), 128 / 255))  # one correctly rounded division
    with pytest.raises(ValueError, match="neither a file nor a scikit-image sample"):
        io.load_image("no-such-image")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        io.load_image(str(tmp_path / "bad.png"))


# --------------------------------------------------------------------------- load_image by image mode


def _load(tmp_path, im, name="im.png", **kw):
    path = tmp_path / name
    im.save(path)
    return io.load_image(str(path), **kw)


def test_palette_png_gives_colours_not_indices(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)  # index 0 and index 1
    im.putdata([0, 1, 1, 0, 0, 1])
    x = _load(tmp_path, im)
    assert x.shape == (1, 3, 2, 3)
    assert torch.equal(x[0, :, 0, 0] * 255, torch.tensor([10.0, 20, 30])) and torch.equal(x[0, :, 0, 1] * 255, torch.tensor([200.0, 100, 50]))


def test_palette_with_transparency_drops_alpha_and_says_so(tmp_path):
    im = Image.new("P", (2, 2))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putdata([0, 1, 1, 0])
    im.info["transparency"] = 1
    path = tmp_path / "t.png"
    im.save(path, transparency=1)
    with pytest.warns(UserWarning, match="alpha channel .* dropped"):
        x = io.load_image(str(path))
    assert torch.equal(x[0, :, 0, 0], torch.tensor([1.0, 0, 0])) and torch.equal(x[0, :, 0, 1], torch.tensor([0.0, 0, 1]))


def test_cmyk_converted_to_rgb(tmp_path):
    im = Image.new("CMYK", (2, 1))
    im.putdata([(0, 255, 255, 0), (0, 0, 0, 255)])  # pure red, black
    x = _load(tmp_path, im, "c.tiff")
    assert x.shape == (1, 3, 1, 2)
    assert torch.equal(x[0, :, 0, 0], torch.tensor([1.0, 0, 0])) and torch.equal(x[0, :, 0, 1], torch.zeros(3))


def test_16_bit_png_scaled_by_65535(tmp_path):
    a = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    x = _load(tmp_path, Image.fromarray(a))
    assert torch.equal(x, torch.from_numpy(a.astype(np.float32) / 65535)[None, None])


def test_float_tiff_kept_as_floats_and_out_of_range_refused(tmp_path):
    a = np.array([[0.0, 0.25, 0.123456, 1.0]], dtype=np.float32)
    x = _load(tmp_path, Image.fromarray(a), "f.tiff")
    assert torch.equal(x, torch.from_numpy(a)[None, None])  # not divided by 255
    with pytest.raises(ValueError, match=r"values in \[0, 255\], outside \[0, 1\]; rescale"):
        _load(tmp_path, Image.fromarray(a * 255), "g.tiff")
    with pytest.raises(ValueError, match="NaN"):
        _load(tmp_path, Image.fromarray(np.array([[np.nan, 0.5]], dtype=np.float32)), "h.tiff")


@pytest.mark.parametrize("mode, value, gray", [("LA", (77, 128), True), ("RGBA", (10, 20, 30, 128), False)])
def test_alpha_is_dropped_with_a_warning(tmp_path, mode, value, gray):
    im = Image.new(mode, (2, 2), value)
    with pytest.warns(UserWarning, match="alpha channel"):
        x = _load(tmp_path, im)
    colour = torch.tensor(value[:-1], dtype=torch.float32) / 255
    assert x.shape == (1, 1 if gray else 3, 2, 2)
    assert torch.equal(x[0, :, 1, 1], colour)


def test_bilevel_and_requested_channels(tmp_path):
    im = Image.fromarray(np.array([[True, False]]))
    assert im.mode == "1"
    assert torch.equal(_load(tmp_path, im), torch.tensor([[[[1.0, 0.0]]]]))
    rgb = Image.new("RGB", (1, 1), (255, 0, 0))
    gray = _load(tmp_path, rgb, channels=1)
    # the luma weight of red, rounded to float32 (within 0.299 * 2^-24 = 1.8e-8)
    assert gray.shape == (1, 1, 1, 1) and gray.item() == pytest.approx(0.299, rel=2.0**-24)
    g = Image.new("L", (1, 1), 51)
    assert torch.equal(_load(tmp_path, g, channels=3), torch.full((1, 3, 1, 1), 51 / 255))
    with pytest.raises(ValueError, match="channels must be 1"):
        _load(tmp_path, g, channels=2)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        _load(tmp_path, g, size=0)


# --------------------------------------------------------------------------- output folders


def test_ensure_writable_dir_leaves_no_file(tmp_path):
    out = io.ensure_writable_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []


def test_ensure_writable_dir_without_creating(tmp_path):
    out = io.ensure_writable_dir(tmp_path / "a" / "b", create=False)
    assert out == tmp_path / "a" / "b" and not (tmp_path / "a").exists()  # made by the first write only
    io.write_text(out / "x.txt", "hi")
    assert (out / "x.txt").read_text() == "hi"
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="not a writable folder"):
        io.ensure_writable_dir(tmp_path / "f" / "sub", create=False)


@pytest.mark.parametrize(
    "x, error, match",
    [(torch.rand(5, 4, 4), ValueError, "C = 1 or 3"), (np.zeros((4, 4)), TypeError, "torch.Tensor"),
     (torch.rand(4, 4), ValueError, r"got shape \(4, 4\)"), (torch.rand(2, 1, 4, 4), ValueError, "use save_grid")],
)
def test_save_image_bad_inputs(tmp_path, x, error, match):
    with pytest.raises(error, match=match):
        io.save_image(tmp_path / "x.png", x)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"batch \(B, C, H, W\)"):
        io.save_grid(tmp_path / "g.png", torch.rand(3, 4, 4))


def test_json_is_strict_nan_is_null_and_infinities_are_named(tmp_path):

    io.write_json(tmp_path / "a.json", {"rhos": torch.tensor([math.nan, 1.0]), "range": (0.0, math.inf), "n": torch.tensor(3)})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}")) == {"rhos": [None, 1.0], "range": [0.0, "inf"], "n": 3}


def test_a_truncated_png_is_not_a_readable_image(tmp_path):
    io.save_image(tmp_path / "a.png", torch.rand(1, 3, 16, 16))
    assert io.is_readable_image(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])
    assert not io.is_readable_image(tmp_path / "b.png") and not io.is_readable_image(tmp_path / "missing.png")
