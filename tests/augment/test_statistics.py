"""Sampled parameters follow the specification's ranges and probabilities (checked over many draws)."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_skel.augment import (
    GaussianBlur,
    GaussianNoise,
    JointMask,
    MainAxisRotate,
    RandomApply,
    RandomChoice,
    Rotate,
    Shear,
)
from ssl_skel.augment.base import Frames, random_subset

N = 4000


def _like() -> torch.Tensor:
    return torch.zeros(N, 3, 1, 1, 1)


def test_random_apply_probability_is_per_sample() -> None:
    applied = RandomApply(Shear(), 0.3).sample_applied(N, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert abs(applied.float().mean().item() - 0.3) < 0.03
    x = torch.ones(200, 3, 4, 5, 1)
    out = RandomApply(GaussianNoise(0.5), 0.5)(x, torch.Generator().manual_seed(1))
    changed = (out != x).flatten(1).any(dim=1).float().mean().item()
    assert 0.35 < changed < 0.65


def test_random_choice_probabilities() -> None:
    choice = RandomChoice([Shear(), Shear(), Shear()], [0.5, 0.3, 0.2])
    picked = choice.sample_choice(N, torch.device("cpu"), torch.Generator().manual_seed(0))
    freq = torch.bincount(picked, minlength=3).float() / N
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.3, 0.2]), atol=0.03, rtol=0)


def test_shear_off_diagonals_are_uniform_in_range() -> None:
    matrix = Shear(0.5).coord_map(_like(), torch.Generator().manual_seed(0)).matrix
    eye = torch.eye(3, dtype=torch.bool)
    off = matrix[:, ~eye]
    assert (matrix[:, eye] == 1).all()
    assert off.min() >= -0.5 and off.max() <= 0.5 and off.min() < -0.49 and off.max() > 0.49
    assert abs(off.mean().item()) < 0.01 and abs(off.var().item() - 1 / 12) < 0.005


def test_main_axis_rotation_angles() -> None:
    angles = MainAxisRotate().sample_angles(N, _like(), torch.Generator().manual_seed(0)) * 180 / math.pi
    main = angles.argmax(dim=1)
    freq = torch.bincount(main, minlength=3).float() / N
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3), atol=0.03, rtol=0)
    top = angles.max(dim=1).values
    others = angles.sort(dim=1).values[:, :2]
    assert top.max() <= 30 and top.mean().item() > 14 and others.min() >= 0 and others.max() <= 1
    assert others.mean().item() == pytest.approx(0.5, abs=0.02)


def test_uniform_rotation_angles_and_matrices_are_rotations() -> None:
    module = Rotate(0.3)
    angles = module.sample_angles(N, _like(), torch.Generator().manual_seed(0))
    assert angles.min() >= -0.3 and angles.max() <= 0.3 and angles.min() < -0.29 and angles.max() > 0.29
    matrix = module.coord_map(_like().double(), torch.Generator().manual_seed(0)).matrix
    torch.testing.assert_close(matrix @ matrix.transpose(1, 2), torch.eye(3, dtype=matrix.dtype).expand_as(matrix))
    torch.testing.assert_close(torch.linalg.det(matrix), torch.ones(N, dtype=matrix.dtype))


def test_noise_sigma_and_shape_of_the_table_sampler() -> None:
    x = torch.ones(50, 3, 40, 25, 1, dtype=torch.float64)
    noise = GaussianNoise(0.01)(x, torch.Generator().manual_seed(0)) - x
    assert abs(noise.std().item() - 0.01) < 3e-4 and abs(noise.mean().item()) < 3e-4
    z = noise.flatten() / 0.01
    assert abs((z.abs() < 1).double().mean().item() - 0.6827) < 0.005
    assert abs((z.abs() < 2).double().mean().item() - 0.9545) < 0.003


def test_blur_sigma_range() -> None:
    sigma = GaussianBlur().sample_sigma(N, _like(), torch.Generator().manual_seed(0))
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0 and sigma.min() < 0.12 and sigma.max() > 1.98
    assert abs(sigma.mean().item() - 1.05) < 0.03


def test_joint_mask_fraction_and_uniform_joints() -> None:
    frames = Frames(torch.ones(40, 50, 2, dtype=torch.bool))
    hidden = JointMask(0.2).sample_mask(frames, 25, torch.Generator().manual_seed(0))
    assert (hidden.sum(dim=2) == 5).all()
    per_joint = hidden.float().mean(dim=(0, 1, 3))
    torch.testing.assert_close(per_joint, torch.full((25,), 0.2), atol=0.02, rtol=0)


def test_random_subset_is_uniform_over_subsets() -> None:
    chosen = random_subset(30000, 4, 2, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert (chosen.sum(dim=1) == 2).all()
    code = (chosen.long() * torch.tensor([1, 2, 4, 8])).sum(dim=1)
    freq = torch.bincount(code, minlength=16)[[3, 5, 6, 9, 10, 12]].float() / 30000
    torch.testing.assert_close(freq, torch.full((6,), 1 / 6), atol=0.01, rtol=0)
