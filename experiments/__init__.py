"""Research beside the product: probes, ablations and one-off comparisons.

Each module answers one question and runs from the repository root as
``python -m experiments.NAME [--help]``; its configs are in ``experiments/configs/``. They use
hifi_core as any caller would (no private names); the product never imports them. Their
results are one row each in docs/experiments.md.
"""
