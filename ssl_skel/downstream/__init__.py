"""Downstream evaluation of a (pretrained) backbone: linear probe, kNN, fine-tuning, semi-supervised fine-tuning,
action segmentation.

``run_linear(argv)``, ``run_knn(argv)``, ``run_finetune(argv)``, ``run_semi(argv)`` and ``run_segment(argv)`` are
the ``ssl-skel`` commands of the same names as functions (``argv`` as on the command line), returning the final
metrics.
The long-tailed, one-shot and multi-stream ensemble protocols live in :mod:`.longtail`, :mod:`.oneshot` and
:mod:`.ensemble`.
"""

from .checkpoint import CheckpointError, load_pretrained_backbone, read_backbone_state
from .features import FeatureDataset, feature_loaders, split_features
from .module import PROTOCOLS, DownstreamModule, MeanClassAccuracy, TestResult, classification_metrics
from .run import COMMANDS, EvalCLI, run_finetune, run_knn, run_linear, run_semi
from .segment import SegmentCLI, run_segment
from .segmentation import ScoreMerger, SegmentationModule, SegmentationResult, VideoResult

__all__ = [
    "COMMANDS", "PROTOCOLS", "CheckpointError", "DownstreamModule", "EvalCLI", "FeatureDataset", "MeanClassAccuracy",
    "ScoreMerger", "SegmentCLI", "SegmentationModule", "SegmentationResult", "TestResult", "VideoResult",
    "classification_metrics", "feature_loaders", "load_pretrained_backbone", "read_backbone_state", "run_finetune",
    "run_knn", "run_linear", "run_segment", "run_semi", "split_features",
]
