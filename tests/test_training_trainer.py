"""Trainer: exact resume, checkpoint format, validation logs, export, CLI."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_training_data import make_clip, make_photos  # noqa: E402

from hifi_core import load_model  # noqa: E402
from hifi_core.cascade import level_inputs  # noqa: E402
from hifi_core.flow_base import warp_frames  # noqa: E402
from hifi_core.training.config import config_from_dict  # noqa: E402
from hifi_core.training.state import CHECKPOINT_NAME, export_ema  # noqa: E402
from hifi_core.training.steps import learning_rate, prefetched_batches, sample_t  # noqa: E402
from hifi_core.training.trainer import Trainer  # noqa: E402


def tiny_config(root: Path, **overrides) -> dict:
    config = {
        "preset": "tiny", "seed": 3, "batch": 2, "steps": 6, "ema_decay": 0.9, "log_every": 2,
        "data": {"root": str(root), "clips": [], "spans": [2, 3], "scales": [1, 2], "real_fraction": 0.5,
                 "crop": [16, 16], "train_fraction": 0.7, "cache_dir": str(root / "cache")},
        "synthetic": {"photo_size": 128, "max_render_scale": 2.0},
        "condition": {}, "diffusion": {},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "validation": {"every": 3, "gaps": [1, 2], "per_clip": 1, "scale": 1, "levels": 2, "steps": [1],
                       "patch": [16, 16], "overlap": 4},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    make_clip(base / "clips" / "pan")
    make_photos(base / "photos")
    return base


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("own_prediction_prob", [0.0, 1.0])
def test_kill_and_resume_matches_an_uninterrupted_run(root, tmp_path, own_prediction_prob):
    # with own-prediction conditions the EMA model makes part of the batch: resume must restore it too
    config = config_from_dict(tiny_config(root, condition={"own_prediction_prob": own_prediction_prob}))
    straight = Trainer(config, tmp_path / "a", validate=False)
    straight.fit(progress=False)
    first = Trainer(config, tmp_path / "b", validate=False)
    first.fit(stop_at=4, progress=False)
    del first  # "killed" after its step-4 checkpoint
    resumed = Trainer(config, tmp_path / "b", validate=False)
    assert resumed.resume() and resumed.step == 4
    resumed.fit(progress=False)
    for name, value in _weights(straight.model).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in _weights(straight.ema).items():
        assert torch.equal(value, resumed.ema.state_dict()[name]), name
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert torch.equal(a[0]["exp_avg_sq"], b[0]["exp_avg_sq"])
    fresh = Trainer(config, tmp_path / "c", validate=False).model.state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in straight.model.state_dict().items())  # it trained


def test_checkpoint_is_safetensors_with_json_state(root, tmp_path):
    trainer = Trainer(config_from_dict(tiny_config(root)), tmp_path, validate=False)
    trainer.fit(stop_at=2, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    data = path.read_bytes()
    header_size = int.from_bytes(data[:8], "little")  # safetensors: u64 size, then a JSON header
    assert json.loads(data[8:8 + header_size])["__metadata__"]["format"] == "hifi-training-state"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
        keys = list(f.keys())
    assert state["step"] == 2 and state["config"]["preset"] == "tiny"
    assert any(k.startswith("ema.") for k in keys) and any(k.startswith("optim.") for k in keys)
    assert not (tmp_path / (CHECKPOINT_NAME + ".tmp")).exists()


def test_validation_logs_csv_plot_and_export(root, tmp_path):
    trainer = Trainer(config_from_dict(tiny_config(root)), tmp_path, validate=True)
    summary = trainer.fit(progress=False)
    assert {"blend", "dis", "hifi-1step"} <= set(summary)
    assert summary["dis"]["all"] > summary["blend"]["all"]  # the pan is where flow wins
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [0, 3, 6]
    assert all(r["loss"] > 0 and r["samples_per_s"] > 0 for r in records if r["kind"] == "train")
    assert (tmp_path / "val.csv").read_text().startswith("step,method,group,psnr,ssim")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    exported = export_ema(tmp_path / CHECKPOINT_NAME, tmp_path / "hifi-tiny.safetensors")
    model = load_model(exported)
    assert model.config.preset == "tiny"
    for name, value in trainer.ema.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


def test_cli_trains_resumes_and_exports(root, tmp_path):
    from hifi_core.cli import main

    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(tiny_config(root, steps=4)))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-validate",
                 "--stop-at", "2"]) == 0
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-validate", "--resume",
                 "--loader-workers", "1", "--precision", "bf16"]) == 0
    written = json.loads((out / "config.json").read_text())
    assert written["loader_workers"] == 1 and written["precision"] == "bf16"
    assert main(["train", "--out", str(out), "--export", str(tmp_path / "x.safetensors")]) == 0
    assert load_model(tmp_path / "x.safetensors").config.preset == "tiny"
    assert main(["train", "--config", str(config_path), "--out", str(out), "--fresh"]) == 2


def test_bad_config_keys_are_named(root):
    from hifi_core.errors import HiFIInputError

    with pytest.raises(HiFIInputError, match="learning_rate"):
        config_from_dict(tiny_config(root, optim={"learning_rate": 1.0}))
    with pytest.raises(HiFIInputError, match="frames"):
        config_from_dict(tiny_config(root, diffusion={"frames": "raw"}))
    with pytest.raises(HiFIInputError, match="residual_base"):  # warped frames need the flow base
        config_from_dict(tiny_config(root, diffusion={"residual_base": "blend", "network_frames": "warped"}))
    with pytest.raises(HiFIInputError, match="disagreement_weight"):
        config_from_dict(tiny_config(root, disagreement_weight=-1.0))
    with pytest.raises(HiFIInputError, match="loss='mse'"):
        config_from_dict(tiny_config(root, loss="mse"))
    with pytest.raises(HiFIInputError, match="own_prediction_prob"):
        config_from_dict(tiny_config(root, condition={"own_prediction_prob": 2.0}))


def test_schedules():
    config = config_from_dict({"steps": 100, "optim": {"lr": 1e-3, "warmup_steps": 10, "schedule": "cosine",
                                                        "min_lr_fraction": 0.1}})
    assert learning_rate(0, config) == pytest.approx(1e-4)
    assert learning_rate(10, config) == pytest.approx(1e-3)
    assert learning_rate(100, config) == pytest.approx(1e-4)
    t = sample_t(10000, config, torch.Generator().manual_seed(0))
    assert 0 < float(t.min()) and float(t.max()) == 1.0
    assert 0.2 < float((t == 1).float().mean()) < 0.3  # p_one = 0.25
    assert float(t.mean()) > 0.7  # biased toward t = 1
    from hifi_core.training.steps import ema_decay

    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(10**6, 0.999) == 0.999
    assert ema_decay(0, 0.999, warmup=False) == 0.999  # fine-tuning: average from the first step


def test_init_from_starts_model_and_ema_from_a_checkpoint_of_the_same_preset(root, tmp_path):
    from hifi_core import build_model, save_checkpoint
    from hifi_core.errors import CheckpointError

    torch.manual_seed(5)
    source = build_model("tiny")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # unlike any fresh initialisation
    save_checkpoint(source, tmp_path / "start.safetensors")
    trainer = Trainer(config_from_dict(tiny_config(root, init_from=str(tmp_path / "start.safetensors"))),
                      tmp_path / "run", validate=False)
    for name, value in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
        assert torch.equal(trainer.ema.state_dict()[name], value), name
    trainer.fit(stop_at=1, progress=False)  # and it trains from there

    save_checkpoint(build_model("small"), tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="same preset"):
        Trainer(config_from_dict(tiny_config(root, init_from=str(tmp_path / "other.safetensors"))),
                tmp_path / "run2", validate=False)


def test_diffusion_overrides_pin_a_runs_model_and_its_export(root, tmp_path):
    config = config_from_dict(tiny_config(root, steps=1, diffusion={"network_frames": "warped"}))
    trainer = Trainer(config, tmp_path, validate=False)
    assert trainer.model.sees_warped_frames and not Trainer(
        config_from_dict(tiny_config(root)), tmp_path / "b", validate=False).model.sees_warped_frames
    trainer.fit(progress=False)  # warped network frames through a whole training step
    exported = load_model(export_ema(tmp_path / CHECKPOINT_NAME, tmp_path / "x.safetensors"))
    assert exported.config.diffusion.network_frames == "warped"


def test_disagreement_weight_counts_where_the_warped_frames_differ(root, tmp_path):
    from hifi_core.training.steps import disagreement_weight

    f0, f2 = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    f2[0] = f0[0]  # sample 0: the frames agree everywhere -> uniform weights
    f2[1, :, :8] = f0[1, :, :8]  # sample 1: they agree in the top half only
    model = Trainer(config_from_dict(tiny_config(root)), tmp_path, validate=False).model
    flows = torch.zeros(2, 4, 16, 16)
    weight = disagreement_weight(model, f0, f2, flows, f0, f2, 10.0)
    assert torch.allclose(weight.mean(dim=(1, 2, 3)), torch.ones(2))
    assert torch.allclose(weight[0], torch.ones(1, 16, 16))
    assert weight[1, :, 8:].mean() > 2 * weight[1, :, :8].mean()
    assert disagreement_weight(model, f0, f2, flows, f0, f2, 0.0) is None
    trainer = Trainer(config_from_dict(tiny_config(root, steps=2, disagreement_weight=10.0)), tmp_path / "w",
                      validate=False)
    trainer.fit(progress=False)  # the weighted loss through whole training steps
    assert trainer.step == 2


def test_loader_workers_make_the_same_batches_and_weights(root, tmp_path):
    # flow base + own predictions: the workers also make the DIS flows the step uses
    overrides = dict(condition={"own_prediction_prob": 1.0}, diffusion={"residual_base": "flow"}, steps=4)
    here = Trainer(config_from_dict(tiny_config(root, **overrides)), tmp_path / "here", validate=False)
    here.fit(progress=False)
    ahead = Trainer(config_from_dict(tiny_config(root, loader_workers=2, **overrides)), tmp_path / "ahead",
                    validate=False)
    ahead.fit(stop_at=2, progress=False)
    ahead.fit(progress=False)  # a second loader starts at step 2, as after a resume
    assert ahead.step == 4
    for name, value in here.model.state_dict().items():
        assert torch.equal(value, ahead.model.state_dict()[name]), name
    # no workers: the same batches, made on demand in this process (scripts use it so)
    made_here = list(prefetched_batches(here.batches, 1, 3, workers=0))
    assert len(made_here) == 2
    for mine, theirs in zip(made_here, (here.batches[1], here.batches[2])):
        assert all(torch.equal(a, b) for a, b in zip(mine[:5], theirs[:5]))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_keeps_float32_weights_and_learns(root, tmp_path, precision):
    # CPU autocast stands in for the GPU's: the same code path, weights and Adam in float32
    config = config_from_dict(tiny_config(root, precision=precision, steps=4))
    trainer = Trainer(config, tmp_path, validate=False)
    start = _weights(trainer.model)
    trainer.fit(progress=False)
    reference = Trainer(config_from_dict(tiny_config(root, steps=4)), tmp_path / "fp32", validate=False)
    reference.fit(progress=False)
    moved, moved_fp32 = [], []
    for name, value in trainer.model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
            moved.append(float((value - start[name]).abs().max()))
            moved_fp32.append(float((reference.model.state_dict()[name] - start[name]).abs().max()))
    assert max(moved) > 0  # it trained
    # the reduced-precision updates track the float32 ones (Adam steps are ~lr each)
    assert abs(max(moved) - max(moved_fp32)) < 0.5 * max(moved_fp32)
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    state = json.loads(__import__("safetensors").safe_open(
        str(tmp_path / CHECKPOINT_NAME), "pt").metadata()["state"])
    assert bool(state["loss_scaler"]) == (precision == "fp16")


def test_unknown_precision_is_named(root):
    with pytest.raises(Exception, match="precision='fp8'"):
        config_from_dict(tiny_config(root, precision="fp8"))


def _base_error(batch) -> float:
    """Mean |flow average - target| of a `StepBatches` item (its context warps if it has them)."""
    f0, ft, f2, tau, flows, *context = batch
    warped0, warped2 = context[0] if context else warp_frames(f0, f2, flows)
    average = warped0 + (warped2 - warped0) * tau.view(-1, 1, 1, 1)
    return float((average - ft).abs().mean())


def test_flow_context_gives_the_crop_the_flows_of_a_larger_view(root, tmp_path):
    # a pan of 2 px/frame over 16 px crops: motion leaves a small crop, so DIS on the crop itself
    # fails at its edges; on a 3x larger view (what inference's whole-frame DIS sees) it does not
    def batches(context):
        config = config_from_dict(tiny_config(root, batch=4, steps=8, data={
            "real_fraction": 1.0, "scales": [1], "spans": [3], "flow_context": context}))
        return Trainer(config, tmp_path / f"c{context}", validate=False).batches

    plain, wide = batches(1), batches(3)
    first = wide[0]
    assert len(first) == 6 and first[0].shape == (4, 3, 16, 16) and first[4].shape == (4, 4, 16, 16)
    assert first[5][0].shape == (4, 3, 16, 16)
    errors = {name: sum(_base_error(b[s]) for s in range(8)) / 8 for name, b in (("crop", plain), ("wide", wide))}
    assert errors["wide"] < 0.1 * errors["crop"], errors


@pytest.mark.parametrize("network_frames", ["raw", "warped"])
def test_training_with_flow_context_uses_the_context_warps(root, tmp_path, network_frames):
    config = config_from_dict(tiny_config(root, data={"flow_context": 2},
                                          diffusion={"network_frames": network_frames},
                                          condition={"own_prediction_prob": 1.0}))
    trainer = Trainer(config, tmp_path, validate=False)
    batch = trainer.batches[0]
    net0, _, warped = level_inputs(trainer.model, batch[0], batch[2], batch[4], batch[3], batch[5])
    tau = batch[3].view(-1, 1, 1, 1)
    assert torch.allclose(warped, batch[5][0] + (batch[5][1] - batch[5][0]) * tau)
    assert torch.equal(net0, batch[5][0] if network_frames == "warped" else batch[0])
    before = _weights(trainer.model)
    trainer.fit(stop_at=2, progress=False)
    assert trainer.step == 2
    assert any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())


def test_flow_context_must_be_a_whole_number(root):
    with pytest.raises(Exception, match="flow_context"):
        config_from_dict(tiny_config(root, data={"flow_context": 0}))


def test_curves_plot_a_log_l2_loss_without_a_log_axis(tmp_path):
    import warnings

    from hifi_core.training.logs import plot_curves

    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train", "step": 25, "loss": -3.9}, {"kind": "train", "step": 50, "loss": -4.1},
        {"kind": "val", "step": 50, "summary": {"hifi-1step": {"all/gap1": 34.9}}}]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when asked to log-scale negative values
        plot_curves(log, tmp_path / "curves.png", {"dis": {"all/gap1": 34.7}}, loss="log_l2")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_loss_axis_names_the_loss_and_what_the_network_predicts():
    from hifi_core.training.logs import loss_label

    assert loss_label("l1") == "training loss (L1 on v)"
    assert loss_label("l1", "x") == "training loss (L1 on x)"
    assert loss_label("log_l2", "x") == "training loss (log of x's mean squared error)"
