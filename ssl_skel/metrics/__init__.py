"""Evaluation metrics: kNN accuracy of embeddings, action segmentation metrics."""

from .knn import KNNAccuracy, knn_predict
from .segmentation import SegmentationMetrics, segmentation_metrics

__all__ = ["KNNAccuracy", "SegmentationMetrics", "knn_predict", "segmentation_metrics"]
