"""Checkpoint evaluation: the quality table against blend/DIS and the shortcut check."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_training_data import make_clip, make_photos  # noqa: E402
from test_training_trainer import tiny_config  # noqa: E402

from hifi_core import build_model, save_checkpoint  # noqa: E402
from hifi_core.baselines import blend_interpolate  # noqa: E402
from hifi_core.config import get_preset  # noqa: E402
from hifi_core.metrics import psnr  # noqa: E402
from hifi_core.training.config import config_from_dict  # noqa: E402
from hifi_core.training.evaluate import condition_check  # noqa: E402
from hifi_core.training.validation import real_clips, validation_set  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    make_clip(base / "clips" / "pan")
    make_clip(base / "clips" / "other", cut_at=100)
    make_photos(base / "photos")
    return base


def _validation(root):
    config = config_from_dict(tiny_config(root))
    return validation_set(real_clips(config), config)


def test_cli_writes_table_with_baselines_on_the_same_triplets(root, tmp_path, capsys):
    from hifi_core.cli import main
    from hifi_core.motion_base import find_rife_weights

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(tiny_config(root)))
    assert main(["train", "--config", str(config_path), "--out", str(tmp_path / "run"),
                 "--evaluate", str(checkpoint), "--eval-per-clip", "1", "--eval-settings", "2x1"]) == 0
    bars = capsys.readouterr().err
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    methods = {r["method"] for r in report["records"]}
    # RIFE's own output when its weights are set up; the model's residual base alone (tiny: DIS)
    rife = {"rife"} if find_rife_weights() is not None else set()
    assert methods == {"blend", "dis", "base flow", "hifi L2 1step"} | rife
    # an untrained flow-base model returns its base
    by_case = {(r["method"], r["case"]): r["psnr"] for r in report["records"]}
    assert all(abs(by_case[("hifi L2 1step", case)] - psnr_) < 0.05
               for (method, case), psnr_ in by_case.items() if method == "base flow")
    val = _validation(root)
    blend = [r for r in report["records"] if r["method"] == "blend"]
    assert len(blend) == len(val) >= 2
    # minutes of full-resolution work show their progress, triplet by triplet
    assert "scoring: 100%" in bars and "shortcut check: 100%" in bars and f"{len(val)}/{len(val)}" in bars
    first = val[0].triplet
    expected = float(psnr(blend_interpolate(first.frame0, first.frame2, first.tau), first.target))
    assert blend[0]["psnr"] == pytest.approx(expected)
    table = (tmp_path / "run" / "evaluation.md").read_text()
    assert "| all |" in table and "hifi L2 1step" in table and "Shortcut check" in table
    assert main(["train", "--config", str(config_path), "--out", str(tmp_path / "run"),
                 "--evaluate", str(checkpoint), "--eval-settings", "two"]) == 2


def test_condition_check_flags_a_model_that_copies_its_condition(root):
    # An untrained residual model adds nothing to its base, which at an upsampling level is
    # the condition (blend reference, without condition_detail): the check must show the
    # output following the (wrong) condition.
    torch.manual_seed(0)
    tiny = get_preset("tiny")
    model = build_model(dataclasses.replace(tiny, diffusion=dataclasses.replace(
        tiny.diffusion, condition_detail=False, residual_base="blend", network_frames="raw")))
    rows = condition_check(model, _validation(root), patch=(32, 32), overlap=8, steps=1)
    assert rows
    for row in rows:
        wrong, correct = row["wrong"], row["correct"]
        assert wrong["detail_corr_condition"] > 0.95 > wrong["detail_corr_truth"]
        assert wrong["psnr_output_vs_truth"] == pytest.approx(wrong["psnr_condition_vs_truth"], abs=0.05)
        assert correct["psnr_output_vs_truth"] == pytest.approx(correct["psnr_condition_vs_truth"], abs=0.05)
        assert row["wrong_from"] != row["case"].split("@")[0]
