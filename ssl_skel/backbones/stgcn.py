"""ST-GCN: spatial-temporal graph convolution network over a skeleton layout.

Every activation inside the network is a logical ``(N*M, C, T, V)`` tensor stored channels-last (physically
``(N*M, T, V, C)``): the graph contraction and the 1x1 channel mixing are then plain matrix products on that
storage, and the oneDNN temporal convolutions and BatchNorm kernels run in their native NHWC layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ssl_skel.skeleton.graph import spatial_adjacency
from ssl_skel.skeleton.layouts import get_layout

__all__ = ["STGCN", "STGCNBlock", "SpatialGraphConv", "StridedPointwiseConv"]

_CL = torch.channels_last


def _keep_mask(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """Bernoulli keep mask shaped and laid out like the 4-d ``x``, with the dropout rescale factor.

    Draws one random byte per element (eight per 64-bit draw, which is many times cheaper on CPU than
    ``bernoulli_``), so ``p`` is rounded to a multiple of 1/256; the returned scale is ``1 / (1 - rounded p)``.
    """
    threshold = round(p * 256)
    words = torch.randint(-(2**63), 2**63 - 1, ((x.numel() + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = words.view(torch.uint8)[: x.numel()] >= threshold
    if x.is_contiguous(memory_format=_CL):
        b, c, t, v = x.shape
        keep = keep.view(b, t, v, c).permute(0, 3, 1, 2)
    else:
        keep = keep.view(x.shape)
    return keep, 256.0 / (256 - threshold)


class BatchNormDropout(nn.BatchNorm2d):
    """``BatchNorm2d`` followed by dropout, with the dropout rescale folded into the affine parameters.

    Args:
        num_features: channels C of the ``(B, C, T, V)`` input.
        p: dropout probability (rounded to a multiple of 1/256 in training; must be below 1).
    """

    def __init__(self, num_features: int, p: float) -> None:
        super().__init__(num_features)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or round(self.p * 256) == 0:
            return super().forward(x)
        keep, scale = _keep_mask(x, self.p)
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        y = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight * scale, self.bias * scale, True, momentum, self.eps
        )
        return y * keep


class SpatialGraphConv(nn.Module):
    """Graph convolution over the K adjacency subsets: ``y = sum_k W_k X (A_k * M_k) + b``.

    The joints are contracted with all K subsets in one matrix product first, then one linear layer mixes the
    ``K * C_in`` channels into ``C_out`` (cheaper than mixing first whenever ``C_out >= C_in``, and exactly the
    same function: the per-subset bias is propagated through the adjacency as a ``(V, C_out)`` term).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        num_subsets: ``K``, the number of adjacency subsets.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.weight = nn.Parameter(torch.empty(out_channels, num_subsets * in_channels))
        self.bias = nn.Parameter(torch.zeros(num_subsets, out_channels))
        bound = 1.0 / (in_channels**0.5)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C_in, T, V)``; ``adjacency``: ``(K, V, V)`` with ``A[k, j, i]`` = weight of joint j into i.

        Returns ``(B, C_out, T, V)`` stored channels-last.
        """
        b, _, t, v = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b * t, v, -1)  # (B*T, V, C_in), free for channels-last input
        mix = rearrange(adjacency, "k j i -> (i k) j")  # (V*K, V)
        gathered = torch.bmm(mix.expand(b * t, -1, -1), tokens)  # (B*T, V*K, C_in): row (i, k) = sum_j A[k, j, i] x[j]
        y = F.linear(gathered.reshape(b * t * v, -1), self.weight)  # (B*T*V, C_out)
        bias = adjacency.sum(dim=1).transpose(0, 1) @ self.bias  # (V, C_out)
        return (y.view(b, t, v, -1) + bias).permute(0, 3, 1, 2)


class StridedPointwiseConv(nn.Conv2d):
    """1x1 convolution with a temporal stride, computed as frame subsampling then a stride-1 1x1 convolution.

    The same function and parameters as ``nn.Conv2d(in, out, 1, (stride, 1))``; the oneDNN kernel of that strided
    form corrupts memory in its weight gradient for some small channel counts on one thread (e.g. 4 -> 8,
    channels-last), which this form never reaches.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, 1)
        self.temporal_stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, :, :: self.temporal_stride])


class STGCNBlock(nn.Module):
    """Spatial graph conv -> [BN, ReLU, temporal conv, BN, dropout] -> + residual -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        num_subsets: adjacency subsets K.
        num_joints: V, for the ``(K, V, V)`` edge-importance mask.
        stride: temporal stride of the temporal convolution (and of the residual projection).
        temporal_kernel: odd temporal kernel size (frames).
        dropout: dropout probability after the temporal unit.
        residual: add a residual branch (identity, or 1x1 conv + BN when the shape changes).
        edge_importance: learn a multiplicative ``(K, V, V)`` mask on the adjacency.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        num_joints: int,
        stride: int = 1,
        temporal_kernel: int = 9,
        dropout: float = 0.5,
        residual: bool = True,
        edge_importance: bool = True,
    ) -> None:
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel must be odd, got {temporal_kernel}")
        self.gcn = SpatialGraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), (stride, 1), ((temporal_kernel - 1) // 2, 0)),
            BatchNormDropout(out_channels, dropout),
        )
        self.residual: nn.Module | None
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                StridedPointwiseConv(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        self.edge_importance = (
            nn.Parameter(torch.ones(num_subsets, num_joints, num_joints)) if edge_importance else None
        )

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T, V) -> (B, C_out, ceil(T / stride), V)``, channels-last."""
        if self.edge_importance is not None:
            adjacency = adjacency * self.edge_importance
        y = self.tcn(self.gcn(x, adjacency))
        if self.residual is not None:
            y = y + self.residual(x)
        return F.relu(y, inplace=True)


class STGCN(nn.Module):
    """ST-GCN encoder (spatial partition, 10 blocks), ``(N, C, T, V, M) -> (N, 16 * width)``.

    Output channels per block: w, w, w, w, 2w (stride 2), 2w, 2w, 4w (stride 2), 4w, 16w; the first block has no
    residual. With ``layout="ntu25"``, 3 input channels and ``width=16`` the network has 821,380 parameters
    (18,750 of them edge importance) and 256-d features.

    Args:
        layout: skeleton layout name (gives V and the spatial-partition adjacency).
        in_channels: C, coordinate channels per joint.
        width: base width w.
        dropout: dropout probability in every temporal unit.
        edge_importance: learn a ``(3, V, V)`` adjacency mask per block.
        temporal_kernel: temporal kernel size (frames, odd).
    """

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        width: int = 16,
        dropout: float = 0.5,
        edge_importance: bool = True,
        temporal_kernel: int = 9,
    ) -> None:
        super().__init__()
        adjacency = spatial_adjacency(get_layout(layout))
        self.register_buffer("adjacency", adjacency, persistent=False)
        k, v = adjacency.shape[0], adjacency.shape[1]
        w = width
        plan = [(in_channels, w, 1), (w, w, 1), (w, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1),
                (2 * w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 16 * w, 1)]  # fmt: skip
        self.data_bn = nn.BatchNorm1d(v * in_channels)
        self.blocks = nn.ModuleList(
            STGCNBlock(c_in, c_out, k, v, s, temporal_kernel, dropout, residual=i > 0, edge_importance=edge_importance)
            for i, (c_in, c_out, s) in enumerate(plan)
        )
        self.feature_dim: int = 16 * w

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, M, D, T', V)`` with ``T' = ceil(ceil(T / 2) / 2)`` and ``D = feature_dim``."""
        n, c, t, v, m = x.shape
        # Input BatchNorm over the V*C channels of every person: rows are (person, frame), channels (joint, coord).
        h = self.data_bn(rearrange(x, "n c t v m -> (n m t) (v c)"))
        h = h.view(n * m, t, v, c).permute(0, 3, 1, 2)  # (N*M, C, T, V), channels-last storage
        for block in self.blocks:
            h = block(h, self.adjacency)
        return rearrange(h, "(n m) d t v -> n m d t v", m=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, D)``: mean over frames, joints and persons (a zero person counts as one)."""
        return self.forward_features(x).mean(dim=(1, 3, 4))
