"""`python -m hifi_core info | interpolate`: real files in, real files out, clear errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from hifi_core.cli import main
from hifi_core.image_io import read_image, write_image

ROOT = Path(__file__).resolve().parent.parent


def make_pair(tmp_path, depth=8, size=(40, 56)):
    import torch
    g = torch.Generator().manual_seed(0)
    paths = []
    for name in ("a.png", "b.png"):
        path = tmp_path / name
        write_image(path, torch.rand(3, *size, generator=g), depth)
        paths.append(str(path))
    return paths


def test_info_lists_presets_and_flops():
    out = subprocess.run([sys.executable, "-m", "hifi_core", "info"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for name in ("tiny", "small", "base", "paper"):
        assert name in out
    assert "GFLOP/MP/step" in out and "checkpoints:" in out


@pytest.mark.parametrize("depth", [8, 16])
def test_interpolate_writes_image_with_same_size_and_depth(tmp_path, depth, capsys):
    a, b = make_pair(tmp_path, depth)
    out = tmp_path / "mid.png"
    code = main(["interpolate", a, b, "-o", str(out), "--preset", "tiny", "--levels", "2",
                 "--patch", "16x16", "--overlap", "4", "--steps", "1", "--device", "cpu"])
    assert code == 0
    image, read_depth = read_image(out)
    assert image.shape == (3, 40, 56) and read_depth == depth
    assert "UNTRAINED" in capsys.readouterr().err


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    a, _ = make_pair(tmp_path)
    other = tmp_path / "c.png"
    write_image(other, __import__("torch").zeros(3, 20, 20))
    assert main(["interpolate", a, str(other), "-o", str(tmp_path / "o.png"), "--preset", "tiny"]) == 2
    assert "same size" in capsys.readouterr().err
    assert main(["interpolate", a, str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["interpolate", a, a, "-o", str(tmp_path / "o.png"), "--tau", "1.5"]) == 2
    assert "tau=1.5" in capsys.readouterr().err
    assert main(["interpolate", a, a, "-o", str(tmp_path / "o.png"), "--checkpoint", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
