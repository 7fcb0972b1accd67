"""Can the model fit one fixed batch at all? (an optimisation sanity check)

Takes the first `--samples` training samples of a config (its crops, hard-example
sampling and initial weights included), and trains the model on that one batch with the
one-step objective (t = 1, base level: condition dropped) and Adam, printing the loss every
25 steps. If the loss falls, the optimiser and gradients work, and a flat loss on the full
stream means the model finds nothing that generalises (docs/training/README.md, capacity
probe); if it does not fall, look for a bug before training longer.

    .venv/bin/python -m experiments.fit_fixed_batch --config experiments/configs/small-probe.json --samples 8
"""

import argparse
import tempfile
from pathlib import Path

import torch

from hifi_core.cascade import level_inputs
from hifi_core.flow_base import estimate_flows
from hifi_core.training.config import load_config
from hifi_core.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out), validate=False)
    model = trainer.model.train()
    frame0, target, frame2, tau = (x[:args.samples] for x in trainer.batches[0][:4])
    if frame0.shape[0] < args.samples:  # more samples than one batch: the next steps' batches
        batches = [trainer.batches[s][:4] for s in range(-(-args.samples // config.batch))]
        frame0, target, frame2, tau = (torch.cat(x)[:args.samples] for x in zip(*batches))
    flows = estimate_flows(frame0, frame2, tau) if model.uses_flow else None
    net0, net2, warped = level_inputs(model, frame0, frame2, flows, tau)
    cond, dropped = torch.zeros_like(target), torch.zeros(args.samples, dtype=torch.bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=config.optim.betas)
    for step in range(args.steps + 1):
        noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(step))
        loss = model.loss(target, net0, net2, tau, cond, dropped, torch.ones(args.samples), noise, warped,
                          norm=config.loss).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        if step % 25 == 0:
            print(f"step {step}: loss {float(loss.detach()):.4f}", flush=True)


if __name__ == "__main__":
    main()
