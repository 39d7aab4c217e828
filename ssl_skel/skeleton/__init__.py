"""Skeleton topology (layouts), graph adjacency and feature streams."""

from .features import STREAMS, bone, joints_from_bones, motion, to_stream
from .graph import binary_adjacency, spatial_adjacency
from .layouts import Layout, get_layout, layout_names, register_layout

__all__ = [
    "STREAMS", "Layout", "binary_adjacency", "bone", "get_layout", "joints_from_bones", "layout_names", "motion",
    "register_layout", "spatial_adjacency", "to_stream",
]
