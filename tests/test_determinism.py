"""Same command, same seed -> byte-identical outputs; and nothing reaches the network."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path


TIMING_KEYS = ("seconds", "time", "elapsed", "wall")


def _strip_timings(obj):
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items() if not any(t in k.lower() for t in TIMING_KEYS)}
    if isinstance(obj, list):
        return [_strip_timings(v) for v in obj]
    return obj


def _snapshot(folder: Path) -> dict:
    """Every file's bytes (JSON parsed with timings removed; HTML, CSV and logs skipped)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(folder))
        if path.suffix == ".json":
            out[rel] = _strip_timings(json.loads(path.read_text()))
        elif path.suffix in (".png", ".safetensors"):
            out[rel] = path.read_bytes()
    return out


def _pipeline(run_cli, base: Path) -> list[Path]:
    ck = base / "ck"
    steps = [
        ["train", "--dataset", "digits", "--image-size", "8", "--width", "4", "--depth", "2", "--epochs", "2",
         "--mode", "layerwise", "--seed", "3", "--out", ck],
        ["maximize", ck, "--neuron", "block2:*", "--reg", "none", "--reg", "standard", "--compare-regs",
         "--steps", "8", "--top-k", "2", "--seed", "3", "--out", base / "vis"],
        ["attack", ck, "--attack", "pgd", "--eps-sweep", "0:0.2:3", "--steps", "3", "--n-examples", "24",
         "--n-show", "2", "--seed", "3", "--out", base / "att"],
    ]
    for argv in steps:
        res = run_cli(*argv)
        assert res.code == 0, res.err[-1500:]
    return [ck, base / "vis", base / "att"]


def test_same_seed_gives_identical_files(tmp_path, run_cli):
    # the same command twice (same paths too: cards record the command line)
    first = [_snapshot(p) for p in _pipeline(run_cli, tmp_path / "run")]
    shutil.rmtree(tmp_path / "run")
    second = [_snapshot(p) for p in _pipeline(run_cli, tmp_path / "run")]
    for name, snap_a, snap_b in zip(("checkpoint", "maximize", "attack"), first, second):
        assert snap_a.keys() == snap_b.keys() and snap_a, name
        for key in snap_a:
            assert snap_a[key] == snap_b[key], f"{name}: {key} differs between identical runs"
    assert any(k.endswith(".png") for k in first[1])


BLOCK_NETWORK = textwrap.dedent('''
    import socket
    _log = __import__("os").environ["FEATVIZ_NET_LOG"]

    def _refuse(*args, **kwargs):
        with open(_log, "a") as fh:
            fh.write(repr(args[:2]) + "\\n")
        raise OSError("network disabled by the test")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
''')


def test_no_command_touches_the_network(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_NETWORK)
    log = tmp_path / "net.log"
    script = textwrap.dedent(f'''
        import sys
        from featviz.cli import main
        base = {str(tmp_path)!r}
        runs = [
            ["train", "--dataset", "digits", "--image-size", "8", "--width", "4", "--depth", "2", "--epochs", "1",
             "--out", base + "/ck"],
            ["maximize", base + "/ck", "--neuron", "block1:0-1", "--steps", "4", "--top-k", "1", "--out", base + "/vis"],
            ["attack", base + "/ck", "--eps", "0.1", "--steps", "2", "--n-examples", "16", "--n-show", "1",
             "--out", base + "/att"],
            ["gallery", base + "/ck", "--vis", base + "/ck=" + base + "/vis", "--attacks", base + "/att",
             "--render-steps", "0", "--out", base + "/gal"],
        ]
        for argv in runs:
            try:
                main(argv)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    sys.exit(f"{{argv[0]}} exited {{exc.code}}")
    ''')
    env = dict(os.environ, PYTHONPATH=str(site), FEATVIZ_NET_LOG=str(log), TQDM_DISABLE="1")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not log.exists() or log.read_text() == "", f"network attempts: {log.read_text()}"
    assert (tmp_path / "gal" / "index.html").is_file()
