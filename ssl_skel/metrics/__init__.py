"""Evaluation metrics: kNN accuracy of embeddings, long-tailed recognition accuracies, action segmentation
metrics."""

from .knn import KNNAccuracy, knn_predict
from .longtail import LongTailAccuracy, long_tail_accuracies, shot_buckets
from .segmentation import SegmentationMetrics, segmentation_metrics

__all__ = [
    "KNNAccuracy", "LongTailAccuracy", "SegmentationMetrics", "knn_predict", "long_tail_accuracies",
    "segmentation_metrics", "shot_buckets",
]
