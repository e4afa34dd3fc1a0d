"""Batch editing: many edits from a manifest with one model load, resumable after a crash, batched denoising,
and a Ray engine to scale out. `pixels batch MANIFEST -o OUTDIR`, or `run_batch(...)`; see
docs/guides/batch.md."""

from .engine import Plan, identity, plan, process, run_local
from .manifest import Row, load_manifest
from .run import BatchProgress, BatchResult, run_batch

__all__ = ["BatchProgress", "BatchResult", "Plan", "Row", "identity", "load_manifest", "plan", "process",
           "run_batch", "run_local"]
