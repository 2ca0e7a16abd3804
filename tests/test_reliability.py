"""Interruption, resumption and atomicity of `featviz train` in real processes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

SYN = ["--dataset", "synthetic", "--d", "6", "--k", "2", "--teacher-depth", "2", "--n-train", "2000",
       "--depth", "2", "--width", "8", "--batch-size", "32", "--mode", "layerwise+joint", "--epochs-per-stage", "40"]


def _env():
    env = dict(os.environ)
    env.pop("TQDM_DISABLE", None)  # the test watches the progress bar to know training has begun
    env["OMP_NUM_THREADS"] = "1"
    return env


def _start_and_wait_for_training(args):
    proc = subprocess.Popen([sys.executable, "-m", "featviz", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(), text=True)
    seen = threading.Event()
    err: list[str] = []

    def pump():
        while True:
            chunk = proc.stderr.read(64)
            if not chunk:
                break
            err.append(chunk)
            if "train block1" in "".join(err[-4:]):
                seen.set()

    threading.Thread(target=pump, daemon=True).start()
    assert seen.wait(120), "training never started"
    time.sleep(0.5)
    return proc, err


def test_sigint_saves_resumable_checkpoint_and_resume_is_bit_identical(tmp_path, run_cli):
    out = tmp_path / "run"
    proc, err = _start_and_wait_for_training([*SYN, "--out", str(out)])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(120) == 130
    time.sleep(0.2)
    stderr = "".join(err)
    assert "resumable checkpoint" in stderr and "Traceback" not in stderr
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["resumable"] is True
    assert (out / "resume.safetensors").is_file() and (out / "resume.json").is_file()

    env = _env()
    done = subprocess.run([sys.executable, "-m", "featviz", "train", "--resume", str(out)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "card.json").read_text())
    assert "resumable" not in resumed["training"] and not (out / "resume.json").exists()

    full = tmp_path / "full"
    ref = subprocess.run([sys.executable, "-m", "featviz", "train", *SYN, "--out", str(full)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert ref.returncode == 0, ref.stderr
    assert (out / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
    assert [s["name"] for s in resumed["metrics"]["stages"]] == ["block1", "block2", "joint"]


def test_kill_9_leaves_the_previous_checkpoint_intact(tmp_path):
    out = tmp_path / "ck"
    first = subprocess.run([sys.executable, "-m", "featviz", "train", *SYN[:-2], "--epochs-per-stage", "1", "--out", str(out)],
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc, _ = _start_and_wait_for_training([*SYN, "--out", str(out), "--force"])
    proc.kill()
    proc.wait(60)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_refuses_a_finished_checkpoint(tmp_path, run_cli):
    out = tmp_path / "done"
    assert run_cli("train", *SYN[:-2], "--epochs-per-stage", "1", "--out", out).code == 0
    res = run_cli("train", "--resume", out)
    assert res.code == 2 and "not a resumable checkpoint" in res.err


def test_adversarial_training_resumes_bit_identically_through_the_resume_files(tmp_path, tiny_digits):
    import torch

    from featviz.attacks import training_adversary
    from featviz.devices import seeded
    from featviz.nets import QuadraticDenseConvNet
    from featviz.resume import load_resume_state, resume_files
    from featviz.train import TrainConfig, TrainingInterrupted, train_model

    adv = {"attack": "pgd", "eps": 0.1, "steps": 2}
    cfg = TrainConfig(mode="layerwise+joint", epochs=2, batch_size=64, lr=1e-2)

    def fresh():
        with seeded(0):
            return QuadraticDenseConvNet(1, 10, widths=(4, 6), image_size=8)

    reference = fresh()
    train_model(reference, tiny_digits, cfg, adversary=training_adversary(adv, seed=1), progress=False)

    model, polls = fresh(), iter(range(100))
    with pytest.raises(TrainingInterrupted) as stop:
        train_model(model, tiny_digits, cfg, adversary=training_adversary(adv, seed=1), progress=False,
                    should_stop=lambda: next(polls) == 2)  # stop after the 3rd epoch (stage 2)
    for name, blob in resume_files(stop.value.state).items():
        (tmp_path / name).write_bytes(blob)
    state = load_resume_state(tmp_path)
    assert state.stage_index == 1 and state.epoch == 1 and state.adversary is not None
    train_model(model, tiny_digits, cfg, adversary=training_adversary(adv, seed=1), progress=False, resume=state)
    for (k, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
