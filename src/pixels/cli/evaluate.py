"""`pixels evaluate`: measure an edit (background fidelity, seam quality, exemplar fidelity, and CLIP/DINO
scores when their weights are at hand)."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .common import EXIT_OK, note

CLIP_MODEL = "openai/clip-vit-base-patch32"  # used when cached, unless --clip says otherwise
DINO_MODEL = "facebook/dino-vits16"


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    evaluate = commands.add_parser(
        "evaluate", parents=[common],
        help="measure an edit: background fidelity, seam quality, exemplar fidelity",
        description="Weight-free measures of RESULT against its source and strength map (and exemplar).",
    )
    evaluate.add_argument("result", metavar="RESULT", help="the edited image")
    evaluate.add_argument("--source", required=True, help="the photo that was edited")
    evaluate.add_argument("--map", required=True, help="the combined strength map used (white = full edit)")
    evaluate.add_argument("--exemplar", help="the exemplar, placed as it was for the edit")
    evaluate.add_argument("--invert-map", action="store_true", help="the map is white = keep")
    evaluate.add_argument("--prompt", default="", metavar="TEXT", help="the edit's prompt, for CLIP-T")
    evaluate.add_argument("--clip", default=None, metavar="ID|PATH",
                          help=f"CLIP model for CLIP-I/CLIP-T: a local folder or cached hub id (default {CLIP_MODEL}"
                               " when it is in the cache; 'none' to skip)")
    evaluate.add_argument("--dino", default=None, metavar="ID|PATH",
                          help=f"DINO ViT for the DINO score: a local folder or cached hub id (default {DINO_MODEL}"
                               " when it is in the cache; 'none' to skip)")
    evaluate.add_argument("--allow-unsafe-pickle", action="store_true",
                          help="allow .bin pickle weights for --clip/--dino (they can run code: only for sources you"
                               " trust)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(run=run)


def _model_metrics(args: argparse.Namespace, result, exemplar, strength) -> dict:
    """CLIP-I, CLIP-T and DINO when their weights are at hand. A model named on the command line that is not
    available is reported as skipped, with the reason; the default models are used only when cached."""
    from ..errors import ModelNotFoundError
    from ..eval.model_metrics import clip_scores, dino_score
    from ..models.catalog import is_cached

    region = strength >= 1.0 if exemplar is not None and (strength >= 1.0).any() else None
    scores: dict = {}
    wanted = []

    def model(given: str | None, default: str) -> str | None:
        if given is not None:
            return None if given.lower() == "none" else given
        return default if is_cached(default, "config.json") else None

    clip, dino = model(args.clip, CLIP_MODEL), model(args.dino, DINO_MODEL)
    if clip and (exemplar is not None or args.prompt):
        wanted.append(("CLIP", lambda: clip_scores(result, exemplar, args.prompt or None, region, model=clip,
                                                   allow_unsafe_pickle=args.allow_unsafe_pickle)))
    if dino and exemplar is not None:
        wanted.append(("DINO", lambda: dino_score(result, exemplar, region, model=dino,
                                                  allow_unsafe_pickle=args.allow_unsafe_pickle)))
    for name, measure in wanted:
        try:
            scores |= measure()
        except ModelNotFoundError as error:
            note(f"{name} skipped: {error}")
    return {"model_based": scores} if scores else {}


def _placed_exemplar(path: str, result_path: str, source, notes: list[str]):
    """The exemplar as the edit placed it: into the box the result's metadata records for it (a result pixels
    wrote), aligned when it has the result's size, and resized to the frame only as a last resort."""
    from ..core.placement import place
    from ..inputs.images import load_image
    from ..outputs.writers import read_metadata

    exemplar, alpha = load_image(path, name="--exemplar")
    if exemplar.size == source.size:
        return exemplar
    metadata = read_metadata(result_path) or {}
    boxes = [e for e in metadata.get("exemplars", []) if e.get("box")]
    if len(boxes) == 1:
        placed, _ = place(source, exemplar, alpha, tuple(boxes[0]["box"]), boxes[0].get("fit", "cover"))
        notes.append(f"--exemplar: placed into the box {tuple(boxes[0]['box'])} the result's metadata records")
        return placed
    notes.append(f"--exemplar: resized from {exemplar.width}x{exemplar.height} to the result's size (the result"
                 " records no single box to place it in; pass the exemplar as placed for the edit)")
    return exemplar.resize(source.size)


def run(args: argparse.Namespace) -> int:
    import json
    import math

    from ..eval.metrics import evaluate, format_report
    from ..inputs.images import load_image, load_map

    result, _ = load_image(args.result, name="result")
    source, _ = load_image(args.source, name="--source")
    if source.size != result.size:
        raise InputError(f"size {source.size} differs from the result's {result.size}", param="--source")
    strength, notes = load_map(args.map, name="--map", size=result.size, invert=args.invert_map)
    exemplar = _placed_exemplar(args.exemplar, args.result, source, notes) if args.exemplar else None
    for text in notes:
        note(text)
    report = evaluate(result, source, strength, exemplar)
    report |= _model_metrics(args, result, exemplar, strength)
    if args.json:
        clean = {g: {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in values.items()}
                 for g, values in report.items()}
        print(json.dumps(clean, indent=2))
    else:
        print(format_report(report))
    return EXIT_OK
