"""Lightning callbacks: online kNN monitoring and skeleton media (augmented views, masked reconstructions)."""

from .knn_monitor import KNNMonitor, extract_features
from .media import ReconstructionLogger, SkeletonViewLogger, render_skeletons

__all__ = ["KNNMonitor", "ReconstructionLogger", "SkeletonViewLogger", "extract_features", "render_skeletons"]
