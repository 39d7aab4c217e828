"""Downstream evaluation of a (pretrained) backbone: linear probe, kNN, fine-tuning, semi-supervised fine-tuning,
long-tailed training sets, NTU-120 one-shot recognition, multi-stream ensembles, action segmentation.

``run_linear(argv)``, ``run_knn(argv)``, ``run_finetune(argv)``, ``run_semi(argv)``, ``run_oneshot(argv)``,
``run_ensemble(argv)`` and ``run_segment(argv)`` are the ``ssl-skel`` commands of the same names as functions
(``argv`` as on the command line), returning the final metrics. The protocols' own rules live in :mod:`.longtail`
(used by ``linear`` / ``finetune`` with ``data.long_tail_imbalance``), :mod:`.oneshot` and :mod:`.ensemble`.
"""

from .checkpoint import (
    CheckpointError,
    check_transfer_layout,
    load_pretrained_backbone,
    pretraining_layout,
    read_backbone_state,
)
from .ensemble import load_run_logits, run_ensemble
from .errors import EvaluationError
from .features import FeatureDataset, feature_loaders, split_features
from .module import PROTOCOLS, DownstreamModule, MeanClassAccuracy, TestResult, classification_metrics
from .run import COMMANDS, EvalCLI, run_finetune, run_knn, run_linear, run_oneshot, run_semi, save_logits
from .segment import SegmentCLI, run_segment
from .segmentation import ScoreMerger, SegmentationModule, SegmentationResult, VideoResult

__all__ = [
    "COMMANDS",
    "PROTOCOLS",
    "CheckpointError",
    "DownstreamModule",
    "EvalCLI",
    "EvaluationError",
    "FeatureDataset",
    "MeanClassAccuracy",
    "ScoreMerger",
    "SegmentCLI",
    "SegmentationModule",
    "SegmentationResult",
    "TestResult",
    "VideoResult",
    "check_transfer_layout",
    "classification_metrics",
    "feature_loaders",
    "load_pretrained_backbone",
    "load_run_logits",
    "pretraining_layout",
    "read_backbone_state",
    "run_ensemble",
    "run_finetune",
    "run_knn",
    "run_linear",
    "run_oneshot",
    "run_segment",
    "run_semi",
    "save_logits",
    "split_features",
]
