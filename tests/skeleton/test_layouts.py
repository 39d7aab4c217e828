"""Every layout is a connected tree with consistent parents, symmetric pairs and complete body parts."""

from __future__ import annotations

import pytest
import torch

from ssl_skel.skeleton import (
    Layout,
    bone,
    get_layout,
    joints_from_bones,
    layout_names,
    motion,
    spatial_adjacency,
    to_stream,
)
from ssl_skel.skeleton.graph import binary_adjacency

LAYOUTS = ["ntu25", "nw_ucla20", "coco17", "openpose18"]
SIZES = {"ntu25": 25, "nw_ucla20": 20, "coco17": 17, "openpose18": 18}


def test_registry_has_every_layout():
    assert set(LAYOUTS) <= set(layout_names())
    with pytest.raises(KeyError, match="unknown skeleton layout"):
        get_layout("kinect99")


@pytest.mark.parametrize("name", LAYOUTS)
def test_connected_tree(name):
    layout = get_layout(name)
    v = layout.num_joints
    assert v == SIZES[name]
    assert len(layout.edges) == v - 1
    assert len({frozenset(e) for e in layout.edges}) == v - 1, "duplicate edge"
    # every joint reaches the centre: hop distances are all finite
    assert (layout.hop_distance >= 0).all()


@pytest.mark.parametrize("name", LAYOUTS)
def test_parents_agree_with_edges(name):
    layout = get_layout(name)
    edges = {frozenset(e) for e in layout.edges}
    for joint, parent in enumerate(layout.parents):
        if joint == layout.center:
            assert parent == joint
        else:
            assert frozenset((joint, parent)) in edges
            # the parent is one hop nearer the centre
            dist = layout.hop_distance[:, layout.center]
            assert dist[parent] == dist[joint] - 1
    child_edges = {frozenset((j, p)) for j, p in enumerate(layout.parents) if j != p}
    assert child_edges == edges


@pytest.mark.parametrize("name", LAYOUTS)
def test_left_right_pairs_symmetric(name):
    layout = get_layout(name)
    perm = torch.tensor(layout.mirror_permutation)
    assert torch.equal(perm[perm], torch.arange(layout.num_joints))
    flat = [j for pair in layout.pairs for j in pair]
    assert len(flat) == len(set(flat)), "a joint appears in two pairs"
    for left, right in layout.pairs:
        assert layout.joints[left].startswith("left_") and layout.joints[right].startswith("right_")
        assert layout.joints[left][5:] == layout.joints[right][6:]
    # mirroring maps the tree onto itself
    edges = {frozenset(e) for e in layout.edges}
    assert {frozenset((int(perm[a]), int(perm[b]))) for a, b in layout.edges} == edges
    assert layout.mirror_permutation[layout.center] == layout.center


@pytest.mark.parametrize("name", LAYOUTS)
def test_body_parts_cover_every_joint_once(name):
    layout = get_layout(name)
    joints = sorted(j for part in layout.parts.values() for j in part)
    assert joints == list(range(layout.num_joints))
    assert {"left_arm", "right_arm", "left_leg", "right_leg"} <= set(layout.parts)
    assert layout.part_index(["left_arm"]) == list(layout.parts["left_arm"])
    with pytest.raises(KeyError, match="no body part"):
        layout.part_index(["tail"])


@pytest.mark.parametrize("name", LAYOUTS)
def test_spatial_adjacency(name):
    layout = get_layout(name)
    v = layout.num_joints
    a = spatial_adjacency(name)
    assert a.shape == (3, v, v)
    assert torch.allclose(a.sum(0).sum(0), torch.ones(v)), "columns of the summed subsets must add up to 1"
    assert torch.allclose(torch.diagonal(a[0]), a.sum(0).diagonal()), "subset 0 holds the self loops"
    assert torch.count_nonzero(a[0] - torch.diag(torch.diagonal(a[0]))) == 0
    # subsets 1 and 2 are transposed patterns of each other (a bone seen from either end)
    assert torch.equal(a[1] > 0, (a[2] > 0).T)
    assert torch.equal(a.sum(0) > 0, binary_adjacency(name) > 0)
    assert int((a[1] > 0).sum()) == v - 1


def test_invalid_layout_is_rejected():
    with pytest.raises(ValueError, match="edges"):
        Layout("bad", ("a", "b", "c"), ((0, 1),), 0, (), {"all": (0, 1, 2)})
    with pytest.raises(ValueError, match="body parts"):
        Layout("bad", ("a", "b"), ((0, 1),), 0, (), {"all": (0,)})
    with pytest.raises(ValueError, match="connect"):
        Layout("bad", ("a", "b", "c", "d"), ((0, 1), (1, 0), (2, 3)), 0, (), {"all": (0, 1, 2, 3)})


@pytest.mark.parametrize("name", LAYOUTS)
def test_streams(name):
    layout = get_layout(name)
    x = torch.randn(2, 3, 7, layout.num_joints, 2, dtype=torch.float64)
    b = bone(x, name)
    assert b.shape == x.shape
    assert torch.equal(b[:, :, :, layout.center], torch.zeros_like(b[:, :, :, layout.center]))
    child = next(j for j in range(layout.num_joints) if j != layout.center)
    assert torch.allclose(b[:, :, :, child], x[:, :, :, child] - x[:, :, :, layout.parents[child]])
    m = motion(x)
    assert torch.allclose(m[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
    assert torch.equal(m[:, :, -1], torch.zeros_like(m[:, :, -1]))
    assert torch.allclose(to_stream(x, "bone_motion", name), motion(b))
    assert to_stream(x, "joint", name) is x
    with pytest.raises(ValueError, match="unknown feature stream"):
        to_stream(x, "velocity", name)
    with pytest.raises(ValueError, match="joints"):
        bone(x[:, :, :, :-1], name)


@pytest.mark.parametrize("name", LAYOUTS)
def test_joints_from_bones_inverts_bone_up_to_the_root(name):
    layout = get_layout(name)
    x = torch.randn(2, 3, 7, layout.num_joints, 2, dtype=torch.float64)
    centred = x - x[:, :, :, layout.center : layout.center + 1]
    assert torch.allclose(joints_from_bones(bone(x, name), name), centred)
    with pytest.raises(ValueError, match="joints"):
        joints_from_bones(x[:, :, :, :-1], name)
