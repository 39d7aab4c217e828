"""Loading a pretrained backbone: strict keys, clear errors, and no code from a hostile file."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch

from ssl_skel.backbones import STGCN, BiGRU
from ssl_skel.downstream import CheckpointError, DownstreamModule, load_pretrained_backbone, read_backbone_state


def test_a_pretraining_checkpoint_loads_into_the_configured_backbone(pretrained_ckpt):
    saved = torch.load(pretrained_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    backbone = STGCN("ntu25", 3, width=4)
    load_pretrained_backbone(backbone, pretrained_ckpt)
    for name, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, saved[f"backbone.{name}"]), name
    assert not any(k.startswith("key_backbone") for k in read_backbone_state(pretrained_ckpt))


def test_the_module_loads_pretrained_weights_and_null_keeps_the_random_init(pretrained_ckpt):
    saved = read_backbone_state(pretrained_ckpt)["blocks.0.gcn.weight"]
    loaded = DownstreamModule(STGCN("ntu25", 3, width=4), 12, pretrained=str(pretrained_ckpt))
    random = DownstreamModule(STGCN("ntu25", 3, width=4), 12, pretrained=None)
    assert torch.equal(loaded.backbone.blocks[0].gcn.weight, saved)
    assert not torch.equal(random.backbone.blocks[0].gcn.weight, saved)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.ckpt"
    with pytest.raises(FileNotFoundError, match=r"not found: .*nowhere\.ckpt"):
        load_pretrained_backbone(STGCN("ntu25", 3, width=4), missing)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", "truncated"])
def test_corrupt_file_is_named(tmp_path, pretrained_ckpt, content):
    path = tmp_path / "broken.ckpt"
    data = pretrained_ckpt.read_bytes()[:5000] if content == "truncated" else content
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"broken\.ckpt: not a readable PyTorch checkpoint"):
        read_backbone_state(path)


def test_mismatched_backbone_lists_the_keys_and_shapes(pretrained_ckpt):
    with pytest.raises(CheckpointError) as wider:
        load_pretrained_backbone(STGCN("ntu25", 3, width=8), pretrained_ckpt)
    message = str(wider.value)
    assert str(pretrained_ckpt) in message and "shapes" in message and "blocks.0.gcn.weight" in message
    with pytest.raises(CheckpointError) as other:
        load_pretrained_backbone(BiGRU("ntu25", 3, num_persons=2, hidden=8), pretrained_ckpt)
    message = str(other.value)
    assert "missing keys" in message and "gru.weight_ih_l0" in message
    assert "unexpected keys" in message and "blocks.0.gcn.weight" in message


def test_a_checkpoint_without_backbone_keys_is_refused(tmp_path):
    path = tmp_path / "head_only.ckpt"
    torch.save({"state_dict": {"head.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match=r"head_only\.ckpt: no backbone weights.*'head'"):
        read_backbone_state(path)


class Payload:
    """Pickles into a call of ``Path.touch`` on ``marker``: loading it with plain pickle creates the file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_a_hostile_checkpoint_is_refused_without_running_its_code(tmp_path):
    proof = tmp_path / "the_payload_works"
    pickle.loads(pickle.dumps(Payload(proof)))
    assert proof.exists(), "the payload runs when unpickled without restrictions"

    marker = tmp_path / "code_ran"
    path = tmp_path / "hostile.ckpt"
    state = {f"backbone.{k}": v for k, v in STGCN("ntu25", 3, width=4).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"x": Payload(marker)}}, path)
    with pytest.raises(CheckpointError, match=r"hostile\.ckpt: refused"):
        load_pretrained_backbone(STGCN("ntu25", 3, width=4), path)
    assert not marker.exists(), "loading ran code from the checkpoint"
