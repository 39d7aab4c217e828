"""A tiny prepared store and tiny method configurations for end-to-end pretraining tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_skel.data.prepare import prepare
from ssl_skel.data.source import get_source


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """48 synthetic clips (ntu25, two persons) split by subject."""
    options = {"num_samples": 48, "num_subjects": 4, "min_frames": 20, "max_frames": 30}
    out = tmp_path_factory.mktemp("tiny") / "store"
    prepare(get_source("synthetic", **options), None, out, source_options=options, progress=False)
    return out
