"""Nothing lost, nothing leaked: the output-folder protocol (races, concurrent runs, --force,
a command's own inputs, signals, full disks) and the gallery's containment of result files.

Each test runs the real CLI entry point (in-process, or in a subprocess where a second process
is the point) on a tiny checkpoint."""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[1] / "studies"
MAX = ["--neuron", "block1:0", "--steps", "1", "--top-k", "0", "--no-converge-check"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from featviz.cli import main

    path = tmp_path_factory.mktemp("safety") / "ck"
    try:
        main(["train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "1", "--epochs", "1",
              "--out", str(path)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(parent: Path) -> list[str]:
    """Temporary areas, lock files or probes left beside an output folder."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- the race: a user's file appears in --out

def test_a_file_created_in_out_while_a_run_is_going_is_kept(ckpt, run_cli, tmp_path, monkeypatch):
    vm = importlib.import_module("featviz.vis.maximize")

    out = tmp_path / "runs"
    real = vm.maximize

    def user_writes_meanwhile(*args, **kwargs):
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("my notes")
        return real(*args, **kwargs)

    monkeypatch.setattr(vm, "maximize", user_writes_meanwhile)
    res = run_cli("maximize", ckpt, *MAX, "--out", out)
    assert res.code == 2, res.err
    assert "changed while featviz was running" in res.err and "runs.featviz-001" in res.err
    assert _tree(out) == {"notes.txt": b"my notes"}  # the user's folder, exactly as they left it
    kept = tmp_path / "runs.featviz-001"
    assert (kept / "metrics.json").is_file() and (kept / ".featviz-output").is_file()  # and the result
    assert _hidden(tmp_path) == []


def test_a_featviz_folder_changed_during_a_forced_run_is_kept(ckpt, run_cli, tmp_path, monkeypatch):
    vm = importlib.import_module("featviz.vis.maximize")

    out = tmp_path / "vis"
    assert run_cli("maximize", ckpt, *MAX, "--out", out).code == 0
    real = vm.maximize

    def user_adds_a_file(*args, **kwargs):
        (out / "sub").mkdir()
        (out / "sub" / "mine.txt").write_text("keep me")
        return real(*args, **kwargs)

    monkeypatch.setattr(vm, "maximize", user_adds_a_file)
    res = run_cli("maximize", ckpt, *MAX, "--out", out, "--force")
    assert res.code == 2 and "vis.featviz-001" in res.err, res.err
    assert (out / "sub" / "mine.txt").read_text() == "keep me"
    assert (tmp_path / "vis.featviz-001" / "metrics.json").is_file()


def test_an_unchanged_featviz_folder_is_replaced_with_force(ckpt, run_cli, tmp_path):
    out = tmp_path / "vis"
    assert run_cli("maximize", ckpt, *MAX, "--out", out).code == 0
    inode = out.stat().st_ino
    res = run_cli("maximize", ckpt, *MAX, "--out", out, "--force")
    assert res.code == 0, res.err
    assert out.stat().st_ino != inode and (out / "metrics.json").is_file()
    assert _hidden(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["vis"]


def test_an_empty_folder_at_out_is_replaced(ckpt, run_cli, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert run_cli("maximize", ckpt, *MAX, "--out", out).code == 0
    assert (out / "metrics.json").is_file()


# ---------------------------------------------------------------- concurrent runs and locks

def _lock_area(out: Path) -> Path:
    return out.parent / f".{out.name}.featviz-tmp"


def _fake_lock(out: Path, pid: int) -> None:
    import socket

    area = _lock_area(out)
    area.mkdir()
    (area / "lock").write_text(json.dumps({"made_by": "featviz", "pid": pid, "host": socket.gethostname()}))


def test_a_second_run_on_the_same_out_fails_fast_naming_the_first(ckpt, run_cli, tmp_path):
    """A real second process holds --out: the run here ends at once with exit 2; the other finishes."""
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    first = subprocess.Popen([sys.executable, "-m", "featviz", "maximize", str(ckpt), "--neuron", "block1:0",
                              "--steps", "3000", "--top-k", "0", "--no-converge-check", "--out", str(out)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")] and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        res = run_cli("maximize", ckpt, *MAX, "--out", out)
        assert res.code == 2, res.err
        assert f"another featviz run is writing {out}, pid {first.pid}" in res.err
        assert time.monotonic() - started < 5
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, err[-500:]
    assert (out / "metrics.json").is_file() and _hidden(tmp_path) == []


def test_a_lock_of_a_live_process_is_respected_and_a_stale_one_cleared(ckpt, run_cli, tmp_path):
    out = tmp_path / "o"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _fake_lock(out, sleeper.pid)
        res = run_cli("maximize", ckpt, *MAX, "--out", out)
        assert res.code == 2 and f"pid {sleeper.pid}" in res.err, res.err
        assert not out.exists() and (_lock_area(out) / "lock").is_file()
    finally:
        sleeper.kill()
        sleeper.wait()
    res = run_cli("maximize", ckpt, *MAX, "--out", out)  # its process is gone: the lock is stale
    assert res.code == 0, res.err
    assert (out / "metrics.json").is_file() and _hidden(tmp_path) == []


def test_an_area_in_the_way_that_featviz_did_not_make_is_not_deleted(ckpt, run_cli, tmp_path):
    out = tmp_path / "o"
    area = _lock_area(out)
    area.mkdir()
    (area / "mine.txt").write_text("x")
    res = run_cli("maximize", ckpt, *MAX, "--out", out)
    assert res.code == 2 and "not featviz's lock" in res.err, res.err
    assert (area / "mine.txt").read_text() == "x"


# ---------------------------------------------------------------- --force needs the marker

@pytest.mark.parametrize("make", ["gallery-lookalike", "card-lookalike", "checkpoint-plus-notes"])
def test_force_refuses_look_alikes(ckpt, run_cli, tmp_path, make):
    target = tmp_path / "mine"
    if make == "gallery-lookalike":
        target.mkdir()
        (target / "index.html").write_text("<p>My page. Made by featviz</p>")
    elif make == "card-lookalike":  # a featviz card beside weights that are not safetensors
        target.mkdir()
        (target / "card.json").write_text(json.dumps({"format": "featviz-checkpoint/1", "arch": {}}))
        (target / "model.safetensors").write_bytes(b"my own bytes")
    else:  # a real checkpoint (no marker) that also holds the user's notes
        shutil.copytree(ckpt, target)
        (target / ".featviz-output").unlink()
        (target / "notes.txt").write_text("mine")
    before = _tree(target)
    res = run_cli("maximize", ckpt, *MAX, "--out", target, "--force")
    assert res.code == 2 and "did not write" in res.err, res.err
    assert _tree(target) == before and _hidden(tmp_path) == []


def test_force_never_replaces_the_commands_own_input(ckpt, run_cli, tmp_path):
    own = tmp_path / "ck"
    shutil.copytree(ckpt, own)
    before = _tree(own)
    for args in (["gallery", own, "--render-steps", "0", "--out", own, "--force"],
                 ["maximize", own / "..", *MAX, "--out", tmp_path, "--force"],
                 ["attack", own, "--eps", "0.1", "--out", own, "--force"],
                 ["gallery", own, "--render-steps", "0", "--out", tmp_path, "--force"]):
        res = run_cli(*args)
        assert res.code == 2 and "input" in res.err, (args, res.err)
    assert _tree(own) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


# ---------------------------------------------------------------- signals and environment faults

def test_sigterm_removes_the_temporary_folder(ckpt, tmp_path):
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "featviz", "maximize", str(ckpt), "--neuron", "block1:0",
                             "--steps", "100000", "--top-k", "0", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (_lock_area(out) / "lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err[-500:]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EDQUOT])
def test_a_full_disk_mid_write_ends_in_exit_2_and_leaves_nothing(ckpt, run_cli, tmp_path, monkeypatch, code):
    import featviz.fileio as fileio

    real = fileio.atomic_write_bytes
    calls = {"n": 0}

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 2:  # the second file: the first is already on disk
            raise OSError(code, os.strerror(code), str(path))
        return real(path, data)

    monkeypatch.setattr(fileio, "atomic_write_bytes", failing)
    monkeypatch.setattr(fileio, "atomic_write_text", lambda p, t: failing(p, t.encode()))
    res = run_cli("maximize", ckpt, *MAX, "--out", tmp_path / "o")
    assert res.code == 2, res.err
    assert errno.errorcode[code] in res.err and os.strerror(code) in res.err
    assert list(tmp_path.iterdir()) == []


def test_a_failing_write_primitive_cleans_its_temporary_file(tmp_path, monkeypatch):
    from featviz.errors import FeatvizError
    from featviz.fileio import atomic_write_bytes

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(FeatvizError, match=r"ENOSPC"):
        atomic_write_bytes(tmp_path / "a.bin", b"x" * 10)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the gallery publishes only what a folder holds

def _copy_study(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(STUDIES / name, dest)
    return dest


@pytest.mark.parametrize("value", ["../secret.png", "ABSOLUTE", "sub/../../secret.png", "link.png"])
def test_compare_page_refuses_files_outside_the_folder(tmp_path, value):
    from PIL import Image

    from featviz.errors import FeatvizError
    from featviz.report.site import Site
    from featviz.report.studies import read_studies, write_study_pages

    folder = _copy_study("compare-digits", tmp_path)
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "secret.png")
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    data = json.loads((folder / "results.json").read_text())
    data["files"]["robustness"] = str(tmp_path / "secret.png") if value == "ABSOLUTE" else value
    (folder / "results.json").write_text(json.dumps(data))
    site = tmp_path / "site"
    site.mkdir()
    with pytest.raises(FeatvizError, match=r"files\.robustness"):
        write_study_pages(Site(site, "t"), read_studies([(folder, "c")]))
    assert not [p for p in site.rglob("*.png")]


def test_image_study_page_refuses_a_symlinked_figure_and_a_climbing_unit_file(tmp_path):
    from PIL import Image

    from featviz.errors import FeatvizError
    from featviz.report.site import Site
    from featviz.report.studies import read_studies, write_study_pages

    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "secret.png")
    folder = _copy_study("image-study", tmp_path)
    (folder / "teacher_error.png").unlink()
    (folder / "teacher_error.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(FeatvizError, match="teacher_error.png"):
        write_study_pages(Site(tmp_path / "s1", "t"), read_studies([(folder, "i")]))
    shutil.rmtree(folder)
    folder = _copy_study("image-study", tmp_path)
    data = json.loads((folder / "results.json").read_text())
    data["units"][0]["files"]["teacher"] = "../secret.png"
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(FeatvizError, match=r"units\[\]\.files\.teacher"):
        write_study_pages(Site(tmp_path / "s2", "t"), read_studies([(folder, "i")]))
    assert not list((tmp_path / "s2").rglob("secret*"))


def test_gallery_command_refuses_a_study_naming_a_file_outside(ckpt, run_cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "secret.png")
    folder = _copy_study("compare-digits", tmp_path)
    data = json.loads((folder / "results.json").read_text())
    data["files"]["robustness"] = "../secret.png"
    (folder / "results.json").write_text(json.dumps(data))
    res = run_cli("gallery", ckpt, "--study", folder, "--render-steps", "0", "--out", tmp_path / "g")
    assert res.code == 2 and "files.robustness" in res.err, res.err
    assert not (tmp_path / "g").exists() and _hidden(tmp_path) == []


def test_gallery_command_refuses_a_symlink_in_a_study_folder(ckpt, run_cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "secret.png")
    folder = _copy_study("purification", tmp_path)
    (folder / "zz-leak.png").symlink_to(tmp_path / "secret.png")
    res = run_cli("gallery", ckpt, "--study", folder, "--render-steps", "0", "--out", tmp_path / "g")
    assert res.code == 2 and "zz-leak.png" in res.err, res.err
    assert not (tmp_path / "g").exists()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _terminal_sigint() -> None:
    """In the child before exec: Ctrl-C's default action, as in a terminal. A suite started as
    a background job (``make test &``) runs with SIGINT ignored, which children inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_during_workers_stops_them_without_tracebacks(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group: the parent and both workers."""
    out = tmp_path / "h"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "featviz", "hierarchy", "run", "--preset", "quick", "--seeds", "2",
                             "--epochs", "400", "--workers", "2", "--threads", "1", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_terminal_sigint)
    try:
        deadline = time.monotonic() + 90
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        workers = _children(proc.pid)
        time.sleep(3)  # the workers are importing or fitting
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(workers) >= 2
    assert proc.returncode == 130, err[-800:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-800:]
    assert list(tmp_path.iterdir()) == []
    time.sleep(0.5)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()
                and (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")]
