"""What one pair's flow estimation adds to a process's peak RSS, per base and size: the
measurement behind `hifi_core.memory.MOTION_BASE_BYTES`.

Each size runs in a fresh process with its pages pinned (mlockall: the kernel's reclaim cannot
hide freed-but-kept memory). OpenCV is loaded and its threads started before pinning, since pinning would make its whole
library resident; what a run really touches of it is printed apart. Frames are half precision.

    .venv/bin/python -m experiments.motion_memory --runs 3
"""

import argparse
import json
import subprocess
import sys

CHILD = """
import ctypes, json, resource, sys
import numpy as np, cv2, torch
from hifi_core.flow_base import estimate_flows
from hifi_core.motion_base import motion_net
blank = np.zeros((32, 32), np.uint8)
cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(blank, blank, None)
ctypes.CDLL(None).mlockall(3)  # MCL_CURRENT | MCL_FUTURE
torch.set_num_threads(2)
height, width, base = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
frame0 = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).half()
frame2 = torch.roll(frame0, (3, 5), (2, 3))
motion_net(torch.device("cpu"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
estimate_flows(frame0, frame2, 0.5, base=base)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""

OPENCV_RESIDENT = """
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
import numpy as np
before = resident()
import cv2
blank = np.zeros((64, 64), np.uint8)
cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(blank, blank, None)
print(resident() - before)
"""

SIZES = ((360, 640), (540, 960), (720, 1280), (1080, 1920))


def child(code: str, *args) -> float:
    return float(subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True,
                                capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"opencv_resident_mib": round(child(OPENCV_RESIDENT), 1)}))
    for base in ("rife", "flow"):
        for height, width in SIZES:
            growth = [round(child(CHILD, height, width, base)) for _ in range(args.runs)]
            # these sizes are estimated unreduced: no float32 frames for the plan to count apart
            print(json.dumps({"base": base, "size": f"{width}x{height}", "growth_mib": growth}))


if __name__ == "__main__":
    main()
