"""Benchmarks of HiFI against the peers: quality, memory and speed, side by side in one run.

Entry point: ``python -m hifi_core bench {quality,memory,speed,all} [--quick] [--out DIR]``
(`hifi_core.commands.bench`). Modules:

- `peers`: every method behind one signature, `(frame0, frame2, tau) -> frame` with frames
  float32 [1, 3, H, W] RGB in [0, 1] on the CPU (HiFI, blend, DIS, ffmpeg minterpolate, RIFE).
- `data`: triplets from real clips (video files or frame folders) and the synthetic stress
  set with exact ground truth (uint8 [H, W, 3] RGB, as stored in a video).
- `quality`: PSNR / SSIM per clip and overall, Markdown + JSON + worst-case contact sheets.
- `memory` (+ `probe`, its child process): peak memory per frame size, patch cascade vs
  full-frame denoising vs peers, OOM recorded instead of crashing.
- `speed`: time per frame, U-Net GFLOP/s against a same-run matmul reference, patch overlap,
  peers' times, and a time / memory vs megapixels plot.
- `flops`, `sizes`, `report`: FLOP counting, named frame sizes, report writing.

Nothing here downloads anything: peers come from installed packages (`imageio-ffmpeg`) or
set-up files (RIFE's weights, `python -m hifi_core setup-motion`), or are skipped with a note.
"""
