"""Run by ComfyUI-Manager (and scripts/setup_env.sh) after requirements.txt: make sure OpenCV
imports, without adding a second OpenCV distribution next to one that another pack brought.

opencv-python, -headless, -contrib-python and -contrib-python-headless all install the same
`cv2` folder; two of them in one environment overwrite each other's files (measured: next to
opencv-contrib-python 5.1, installing opencv-python 5.0 leaves a cv2 that reports 5.0 with
contrib's modules mixed in, and uninstalling either one removes cv2 for the other). HiFI needs
only OpenCV's core modules (DIS optical flow, resizing, colour), which every variant has, so
it adds opencv-python-headless only when no OpenCV distribution is installed at all.

    python install.py            # in the pack's folder, with ComfyUI's Python
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import List

OPENCV_REQUIREMENT = "opencv-python-headless>=4.8"
OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")


def installed_opencv() -> List[str]:
    """The OpenCV distributions installed in this environment."""
    found = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return found


def main() -> int:
    present = installed_opencv()
    if present:
        print(f"HiFI: using the OpenCV already installed ({', '.join(present)}); adding none")
        if len(present) > 1:
            print("HiFI: warning: more than one OpenCV distribution is installed; they share the cv2 "
                  "folder and can break each other. Keep one: pip uninstall the others, then "
                  "reinstall the one you keep with --force-reinstall", file=sys.stderr)
        return 0
    print(f"HiFI: no OpenCV installed; installing {OPENCV_REQUIREMENT}")
    return subprocess.call([sys.executable, "-m", "pip", "install", OPENCV_REQUIREMENT])


if __name__ == "__main__":
    sys.exit(main())
