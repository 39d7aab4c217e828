"""Bidirectional GRU over flattened per-frame poses (HaLP's reference encoder)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ssl_skel.skeleton.layouts import get_layout

__all__ = ["BiGRU", "valid_lengths"]


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V, M) -> (N,)`` int64 on the CPU: 1 + index of the last frame with any nonzero coordinate.

    All-zero frames before that frame count as valid; a clip with no nonzero frame gets length 1.
    """
    t = x.shape[2]
    valid = x.ne(0).any(dim=4).any(dim=3).any(dim=1)  # (N, T)
    positions = torch.arange(1, t + 1, device=x.device)
    return (valid * positions).amax(dim=1).clamp_min(1).cpu()


class BiGRU(nn.Module):
    """``(N, C, T, V, M) -> (N, 2 * hidden)``: the GRU output at each clip's last valid frame.

    Every frame is flattened to a ``V * C * M`` vector (joints x channels x persons), batch-normalised over the
    valid frames only, and fed to a multi-layer bidirectional GRU as a packed sequence, so trailing zero
    (padding) frames never enter the recurrence nor the normalisation statistics. At the last valid frame the
    reverse direction has read that frame only, so the top layer's reverse recurrent weights get no gradient
    through this feature (as in the reference encoder).

    Args:
        layout: skeleton layout name (gives V).
        in_channels: C, coordinate channels per joint.
        num_persons: M, the number of person slots the input always has.
        hidden: hidden size per direction.
        num_layers: stacked GRU layers.
        dropout: dropout between GRU layers.
    """

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        num_persons: int = 2,
        hidden: int = 1024,
        num_layers: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_persons = num_persons
        input_dim = get_layout(layout).num_joints * in_channels * num_persons
        self.input_bn = nn.BatchNorm1d(input_dim)
        self.gru = nn.GRU(input_dim, hidden, num_layers, batch_first=True, dropout=dropout, bidirectional=True)
        self.feature_dim: int = 2 * hidden

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, T, V, M)`` -> per-frame outputs ``(N, T_max, 2 * hidden)`` and the valid lengths ``(N,)``.

        ``T_max`` is the longest valid length in the batch; outputs past a clip's length are zero.
        """
        if x.shape[4] != self.num_persons:
            raise ValueError(f"BiGRU was built for {self.num_persons} person slots, got input with {x.shape[4]}")
        lengths = valid_lengths(x)
        frames = rearrange(x, "n c t v m -> n t (v c m)")
        packed = pack_padded_sequence(frames, lengths, batch_first=True, enforce_sorted=False)
        packed = PackedSequence(
            self.input_bn(packed.data), packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        out, _ = self.gru(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)
        return padded, lengths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, 2 * hidden)``."""
        padded, lengths = self.forward_features(x)
        last = (lengths - 1).to(padded.device)
        return padded[torch.arange(padded.shape[0], device=padded.device), last]
