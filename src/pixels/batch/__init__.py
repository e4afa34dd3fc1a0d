"""Batch editing: many edits from a manifest with one model load, resumable after a crash, batched denoising,
and a Ray engine to scale out. `pixels batch MANIFEST -o OUTDIR`; see the README's batch section."""

from .engine import Plan, plan, process, run_local
from .manifest import Row, load_manifest

__all__ = ["Plan", "Row", "load_manifest", "plan", "process", "run_local"]
