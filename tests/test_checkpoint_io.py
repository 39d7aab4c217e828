"""Checkpoints are replaced atomically (a failure or a kill during the write keeps the old file) and read
weights-only everywhere: resuming, pretrained backbones, the LAC generator."""

from __future__ import annotations

import pathlib
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch

from ssl_skel.backbones import STGCN
from ssl_skel.checkpoint_io import AtomicCheckpointIO, CheckpointError, atomic_torch_save, load_checkpoint_file
from ssl_skel.cli import main
from ssl_skel.methods import HiCLR
from ssl_skel.methods.lac import load_generator

OLD = {"state_dict": {"w": torch.arange(4.0)}, "epoch": 0}
NEW = {"state_dict": {"w": torch.zeros(1 << 16)}, "epoch": 1}


def _assert_old_intact(path: Path) -> None:
    loaded = load_checkpoint_file(path)
    assert loaded["epoch"] == 0 and torch.equal(loaded["state_dict"]["w"], OLD["state_dict"]["w"])


def test_a_failure_during_the_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(OLD, path)
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint(NEW, path)
    _assert_old_intact(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"], "the partial temporary file is removed"


def test_a_kill_during_the_write_leaves_the_old_checkpoint(tmp_path):
    """A child process is SIGKILLed with half of the new checkpoint written: the old file is intact, and the
    next write removes the child's left-over temporary file."""
    path = tmp_path / "last.ckpt"
    atomic_torch_save(OLD, path)
    child = textwrap.dedent(f"""
        import os, signal, torch
        from ssl_skel.checkpoint_io import atomic_torch_save
        real_save = torch.save
        def save_half_then_die(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            f.truncate(f.tell() // 2)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = save_half_then_die
        atomic_torch_save({{"state_dict": {{"w": torch.zeros(1 << 16)}}, "epoch": 1}}, {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0, "the child died inside its write"
    _assert_old_intact(path)
    atomic_torch_save(NEW, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert load_checkpoint_file(path)["epoch"] == 1


def test_trainer_checkpoints_round_trip_through_the_plugin(tmp_path):
    model = HiCLR(STGCN("ntu25", 3, width=4), queue_size=16, embedding_dim=16)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        plugins=[AtomicCheckpointIO()])
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = trainer.strategy.checkpoint_io.load_checkpoint(tmp_path / "model.ckpt")
    assert torch.equal(loaded["state_dict"]["queue.keys"], model.queue.keys)


class Payload:
    """Pickles into a call of ``Path.touch`` on ``marker``: loading it with plain pickle creates the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture()
def hostile(tmp_path) -> tuple[Path, Path]:
    """A checkpoint with real weights and a code-running object in its hyper-parameters, and the marker file its
    code would create."""
    proof = tmp_path / "the_payload_works"
    pickle.loads(pickle.dumps(Payload(proof)))
    assert proof.exists(), "the payload runs when unpickled without restrictions"
    marker = tmp_path / "code_ran"
    model = HiCLR(STGCN("ntu25", 3, width=4), queue_size=16, embedding_dim=16)
    path = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": model.state_dict(), "lac_generator": {}, "hyper_parameters": Payload(marker)}, path)
    return path, marker


def test_resuming_from_a_hostile_checkpoint_is_refused(hostile, tiny_store, tmp_path):
    path, marker = hostile
    argv = [
        "pretrain", "-c", "configs/pretrain/hiclr/synthetic.yaml", "--data.dataset", "null",
        "--data.root", str(tiny_store), "--data.split", "xsub", "--data.num_workers", "0",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run"), "--ckpt_path", str(path),
    ]
    with pytest.raises(CheckpointError, match=r"hostile\.ckpt: refused"):
        main(argv)
    assert not marker.exists(), "resuming ran code from the checkpoint"


def test_a_hostile_generator_checkpoint_is_refused(hostile):
    path, marker = hostile
    with pytest.raises(CheckpointError, match=r"hostile\.ckpt: refused"):
        load_generator(path)
    assert not marker.exists()


def test_the_plugin_refuses_a_hostile_checkpoint_even_when_asked_for_full_loading(hostile):
    path, marker = hostile
    with pytest.raises(CheckpointError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()
