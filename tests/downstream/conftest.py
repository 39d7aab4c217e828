"""A pretraining checkpoint whose backbone fits the tiny evaluation configs of ``downstream_configs``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

from ssl_skel.backbones import STGCN
from ssl_skel.methods import HiCLR


@pytest.fixture(scope="session")
def pretrained_ckpt(tmp_path_factory) -> Path:
    """A Lightning checkpoint of a HiCLR model whose backbone is the tiny configs' ST-GCN (width 4)."""
    L.seed_everything(5)
    model = HiCLR(STGCN("ntu25", 3, width=4), queue_size=16, embedding_dim=16)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(model)
    path = tmp_path_factory.mktemp("pretrained") / "last.ckpt"
    trainer.save_checkpoint(path)
    return path
