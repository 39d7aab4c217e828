"""BatchNorm over the global batch of a distributed run, on any device.

PyTorch's ``SyncBatchNorm`` runs on GPUs only, and its conversion turns ST-GCN's
:class:`~ssl_skel.backbones.stgcn.BatchNormDropout` into a plain BatchNorm (the dropout is lost).
:class:`GlobalBatchNorm` is the Lightning ``LayerSync`` plugin of this project instead (the CLIs use it for
``--trainer.sync_batchnorm true``): it swaps every BatchNorm layer for an :class:`AllReduceBatchNorm`, which
computes the batch statistics of all processes with one all-reduce of ``2C + 1`` numbers per layer and call, on
the CPU (gloo) as well as on GPUs (NCCL), and keeps a BatchNormDropout's dropout. Gradients flow through the
all-reduce, so training matches one process that sees the whole global batch. Single-process runs and
evaluation (running statistics) are unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from lightning.pytorch.plugins import LayerSync
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .backbones.stgcn import BatchNormDropout

__all__ = ["AllReduceBatchNorm", "GlobalBatchNorm"]


class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm over ``(N, C, ...)`` whose training statistics are those of the batches of every process,
    optionally followed by dropout.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as ``nn.BatchNorm2d``.
        p: dropout probability after the normalisation in training (a converted BatchNormDropout's).

    ``original_class`` is the class it replaced (restored by :meth:`GlobalBatchNorm.revert`).
    """

    original_class: type[_BatchNorm] = nn.BatchNorm2d

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, p: float = 0.0) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.p = p

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected input of shape (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        y = self._global(x) if self.training and distributed else super().forward(x)
        return F.dropout(y, self.p, training=True) if self.training and self.p > 0 else y

    def _global(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode BatchNorm of ``x`` with the statistics of every process's batch."""
        self._check_input_dim(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        # sums in float64: exact counts and no cancellation in E[x^2] - E[x]^2 at any batch size
        count = torch.full((1,), x.numel() // channels, dtype=torch.float64, device=x.device)
        sums = [xf.sum(dims, dtype=torch.float64), (xf * xf).sum(dims, dtype=torch.float64), count]
        totals = dist_fn.all_reduce(torch.cat(sums))
        n = totals[-1]
        mean64 = totals[:channels] / n
        var64 = (totals[channels : 2 * channels] / n - mean64 * mean64).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var64 * n / (n - 1).clamp_min(1)
                self.running_mean.lerp_(mean64.to(self.running_mean.dtype), m)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (xf - mean64.float().view(shape)) * torch.rsqrt(var64.float().view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _converted(module: _BatchNorm) -> AllReduceBatchNorm:
    if type(module).forward is not _BatchNorm.forward and not isinstance(module, BatchNormDropout):
        raise TypeError(f"{type(module).__name__} has its own forward: GlobalBatchNorm cannot synchronise it")
    p = module.p if isinstance(module, BatchNormDropout) else 0.0
    layer = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, p)
    layer.original_class = type(module)
    return layer


def _reverted(module: AllReduceBatchNorm) -> _BatchNorm:
    if issubclass(module.original_class, BatchNormDropout):
        return module.original_class(module.num_features, module.p)
    return module.original_class(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)


def _swap(module: nn.Module, convert: bool) -> nn.Module:
    """``module`` with every BatchNorm layer swapped for an :class:`AllReduceBatchNorm` (``convert``) or back."""
    if convert and isinstance(module, _BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        swapped = _converted(module)
    elif not convert and isinstance(module, AllReduceBatchNorm):
        swapped = _reverted(module)
    else:
        for name, child in module.named_children():
            module.add_module(name, _swap(child, convert))
        return module
    # the same parameter and buffer objects (as torch's SyncBatchNorm conversion): requires_grad, devices and any
    # optimizer holding them carry over
    for name, tensor in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)):
        setattr(swapped, name, tensor)
    return swapped.train(module.training)


class GlobalBatchNorm(LayerSync):
    """Lightning plugin: every BatchNorm layer of the model normalises with the global batch's statistics
    (``Trainer(plugins=[GlobalBatchNorm()])``; the ``ssl-skel`` CLIs use it for ``--trainer.sync_batchnorm true``)."""

    def apply(self, model: nn.Module) -> nn.Module:
        return _swap(model, convert=True)

    def revert(self, model: nn.Module) -> nn.Module:
        return _swap(model, convert=False)
