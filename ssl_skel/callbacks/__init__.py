"""Lightning callbacks: online kNN monitoring and skeleton media."""

from .knn_monitor import KNNMonitor, extract_features
from .media import SkeletonViewLogger, render_skeletons

__all__ = ["KNNMonitor", "SkeletonViewLogger", "extract_features", "render_skeletons"]
