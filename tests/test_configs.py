"""Every shipped pretraining config parses and resolves (``--print_config``) with the recipe it states."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssl_skel.cli import main

CONFIGS = sorted(p for p in Path("configs/pretrain").glob("*/*.yaml") if p.stem != "stgcn16_ntu25")
DATASETS = {"ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "pku_mmd1_xsub", "nw_ucla", "synthetic"}


# the CPU-sized PKU-MMD chain of the segmentation proof (each file states its deviations from the recipe)
EXTRA_CONFIGS = {
    "lac": {"pku_mmd1_untrimmed_xsub", "pku_mmd1_xsub_cpu"},
    "lac_generator": {"pku_mmd1_xsub_cpu"},
    "hiclr": {"pku_mmd1_xsub_cpu"},
}
MASKED = ("skeleton_mae", "mamp")


def _resolve(config: Path, capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "-c", str(config), "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_every_method_has_every_dataset():
    for method in ("hiclr", "halp", "lac_generator", "lac", *MASKED):
        assert {p.stem for p in CONFIGS if p.parent.name == method} == DATASETS | EXTRA_CONFIGS.get(method, set())


def check_lac_generator(resolved: dict, cpu_sized: bool) -> None:
    """The generator recipe of spec/methods.md (the CPU-sized variants shorten the schedule only)."""
    init = resolved["model"]["init_args"]
    assert (init["channels"], init["motion_dim"], init["dropout"], init["triplet_margin"]) == ([64, 96, 160], 128,
                                                                                              0.2, 1.0)
    assert init["optimizer"]["class_path"] == "torch.optim.Adam" and init["optimizer"]["init_args"]["lr"] == 0.001
    assert resolved["data"]["batch_size"] == 64 and resolved["data"]["num_frames"] % 8 == 0
    if not cpu_sized:
        assert (resolved["trainer"]["max_epochs"], init["scheduler"]["init_args"]["gamma"]) == (300, 0.99)


@pytest.mark.parametrize(
    "config", [p for p in CONFIGS if p.parent.name not in MASKED], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_config_resolves(config, capsys):
    resolved = _resolve(config, capsys)
    init = resolved["model"]["init_args"]
    if config.parent.name == "lac_generator":
        check_lac_generator(resolved, cpu_sized=config.stem in ("nw_ucla", "synthetic", "pku_mmd1_xsub_cpu"))
        return
    cpu_sized_hiclr = config.parent.name == "hiclr" and config.stem == "nw_ucla"  # momentum 0.99, stated in the file
    cpu_sized = cpu_sized_hiclr or config.stem.endswith("_cpu")  # likewise
    assert init["temperature"] == 0.07 and init["momentum"] == (0.99 if cpu_sized else 0.999)
    batch = resolved["data"]["batch_size"]
    assert init["queue_size"] % batch == 0, "the queue size must be a multiple of the batch"
    if config.stem.endswith("_cpu"):
        assert resolved["data"]["split"] == "xsub" and init["queue_size"] == 256 and init["embedding_dim"] == 128
        if config.parent.name == "lac":
            assert init["frame_queue_size"] == 4096 and resolved["data"]["num_views"] == 1
            assert init["frame_queue_size"] % (2 * batch * 16) == 0, "a step enqueues 2 x batch x 16 frame keys"
    elif config.stem in ("nw_ucla", "synthetic"):
        assert resolved["data"]["dataset" if config.stem == "synthetic" else "split"] is not None
    elif config.parent.name == "hiclr":
        recipe = (init["queue_size"], init["mining_epoch"], batch, resolved["trainer"]["max_epochs"])
        assert recipe == (32768, 150, 128, 300)
    elif config.parent.name == "lac":
        assert (init["queue_size"], init["embedding_dim"], resolved["data"]["num_views"]) == (65536, 128, 1)
    else:
        assert (init["queue_size"], batch, resolved["trainer"]["max_epochs"]) == (16384, 64, 451)


def test_halp_stgcn_composition(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "-c", "configs/pretrain/halp/ntu60_xsub.yaml",
              "-c", "configs/pretrain/halp/stgcn16_ntu25.yaml", "--print_config"])
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["init_args"]["backbone"]["class_path"] == "ssl_skel.backbones.STGCN"


@pytest.mark.parametrize(
    "config", [p for p in CONFIGS if p.parent.name in MASKED], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_masked_config_resolves(config, capsys):
    resolved = _resolve(config, capsys)
    init, data = resolved["model"]["init_args"], resolved["data"]
    backbone = init["backbone"]["init_args"]
    callbacks = [c["class_path"] for c in resolved["trainer"]["callbacks"]]
    assert "ssl_skel.callbacks.ReconstructionLogger" in callbacks
    assert backbone["layout"] == init["layout"] and backbone["max_frames"] >= data["num_frames"]
    assert data["normalization"] == "first_frame"
    if config.stem == "nw_ucla":
        assert (init["layout"], data["split"]) == ("nw_ucla20", "view")
    recipe = config.stem not in ("nw_ucla", "synthetic")
    if config.parent.name == "skeleton_mae":
        assert init["beta"] == 2.0 and (backbone["dim"], backbone["num_layers"]) == (64, 3)
        if recipe:
            lr = init["optimizer"]["init_args"]["lr"]
            assert (lr, data["batch_size"], resolved["trainer"]["max_epochs"], data["num_frames"]) == (
                1.5e-4, 1024, 50, 64
            )
        return
    assert (init["mask_ratio"], backbone["patch_frames"]) == (0.9, 4)
    assert init["view_frames"] == data["num_frames"] <= backbone["max_frames"]
    if recipe:
        assert (backbone["dim"], backbone["depth"], backbone["heads"], init["view_frames"]) == (256, 8, 8, 120)
        assert init["decoder_depth"] == (3 if config.stem.startswith("ntu60") else 5)
        assert init["tau"] == (0.75 if config.stem.startswith("ntu120") else 0.8)
        schedule = init["scheduler"]["init_args"]
        assert (schedule["max_epochs"], schedule["warmup_epochs"], schedule["eta_min"]) == (400, 20, 5e-4)
        assert (data["batch_size"], resolved["trainer"]["max_epochs"]) == (128, 400)
