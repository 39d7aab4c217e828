"""Lightning callbacks: online kNN monitoring and media (augmented views, masked reconstructions, confusion
matrices and embeddings of evaluations)."""

from .knn_monitor import KNNMonitor, extract_features
from .media import (
    ReconstructionLogger,
    SkeletonViewLogger,
    pca_2d,
    render_confusion_matrix,
    render_embedding,
    render_skeletons,
)

__all__ = [
    "KNNMonitor", "ReconstructionLogger", "SkeletonViewLogger", "extract_features", "pca_2d",
    "render_confusion_matrix", "render_embedding", "render_skeletons",
]
