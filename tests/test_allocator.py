"""Returning the heap's freed pages between a job's phases (glibc's malloc_trim)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Fifty touched 2 MiB blocks come from glibc's heap once an 8 MiB block has been freed (glibc
# then raises its mmap threshold); every other one is freed, which keeps them resident until
# the heap is trimmed. Prints the resident MiB given back by freeing, then by the trim.
HEAP_PROBE = textwrap.dedent("""
    import torch
    from hifi_core.allocator import return_freed_memory

    def resident():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2 ** 20

    large = torch.ones(2 << 20)
    del large
    blocks = [torch.ones(1 << 19) for _ in range(50)]
    start = resident()
    del blocks[::2]
    freed = resident()
    trimmed = return_freed_memory()
    print(start - freed, freed - resident(), trimmed)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_freed_heap_pages_stay_resident_until_returned():
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE], cwd=ROOT, check=True, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120).stdout.split()
    by_free, by_trim, trimmed = float(out[0]), float(out[1]), out[2]
    assert trimmed == "True"
    assert by_free < 10          # glibc keeps the 25 freed blocks (50 MiB) resident
    assert by_trim >= 45         # and gives them back when asked
