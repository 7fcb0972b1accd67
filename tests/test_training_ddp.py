"""Distributed training: two CPU processes under torchrun (gloo) end with identical weights."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_training_data import make_clip, make_photos  # noqa: E402
from test_training_trainer import tiny_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Each rank trains, then writes the weights it ended with, so the test can compare them.
RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from pathlib import Path
    from safetensors.torch import save_file
    from hifi_core.training.config import config_from_dict
    from hifi_core.training.trainer import Trainer
    torch.set_num_threads(1)
    config = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
    out = Path(sys.argv[2])
    trainer = Trainer(config, out / "run", validate=False)
    trainer.fit(progress=False)
    rank = trainer.dist.rank
    save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
    # a file per rank: the ranks' stdout lines can interleave without a newline between them
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": trainer.dist.world,
                                                      "step": trainer.step}))
    trainer.close()
""")


def test_two_cpu_ranks_end_with_identical_weights(tmp_path):
    data = tmp_path / "data"
    make_clip(data / "clips" / "pan")
    make_photos(data / "photos")
    config = tiny_config(data, steps=3)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
         str(tmp_path / "rank.py"), str(tmp_path / "config.json"), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["world"], r["step"]) for r in reports] == [(0, 2, 3), (1, 2, 3)]
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # It trained: the weights moved away from the shared initialisation.
    from hifi_core import build_model

    torch.manual_seed(config["seed"])
    init = build_model("tiny").state_dict()
    assert any(not torch.equal(init[k], rank0[k]) for k in rank0)
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()  # rank 0 saved the run
