"""ssl-skel: self-supervised pretraining on human skeleton sequences."""

__version__ = "0.1.0"
