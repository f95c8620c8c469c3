"""Runs: the run-directory registry (registry.py: the app <-> trainer contract and the one start
decision, start_blockers), preflight checks, the queue, outputs and sample names, metrics.jsonl, the
estimate a run started with, resume, delete, TensorBoard and its tags."""
