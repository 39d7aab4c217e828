"""Evaluation metrics: kNN accuracy of embeddings."""

from .knn import KNNAccuracy, knn_predict

__all__ = ["KNNAccuracy", "knn_predict"]
