"""`pixels evaluate`: measure an edit (background fidelity, seam quality, exemplar fidelity, and CLIP/DINO
scores when their weights are at hand)."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .common import EXIT_OK, note


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
    evaluate.add_argument("--clip", default="openai/clip-vit-base-patch32", metavar="ID|PATH",
                          help="CLIP model for CLIP-I/CLIP-T (local folder or cached hub id; 'none' to skip)")
    evaluate.add_argument("--dino", default="facebook/dino-vits16", metavar="ID|PATH",
                          help="DINO ViT for the DINO score (local folder or cached hub id; 'none' to skip)")
    evaluate.add_argument("--allow-unsafe-pickle", action="store_true",
                          help="allow .bin pickle weights for --clip/--dino (they can run code: only for sources you"
                               " trust)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(run=run)


def _model_metrics(args: argparse.Namespace, result, exemplar, strength) -> dict:
    """CLIP-I, CLIP-T and DINO when their weights are at hand; each missing one is reported as skipped."""
    from ..errors import ModelNotFoundError
    from ..model_metrics import clip_scores, dino_score

    region = strength >= 1.0 if exemplar is not None and (strength >= 1.0).any() else None
    scores: dict = {}
    wanted = []
    if args.clip.lower() != "none" and (exemplar is not None or args.prompt):
        wanted.append(("CLIP", lambda: clip_scores(result, exemplar, args.prompt or None, region, model=args.clip,
                                                   allow_unsafe_pickle=args.allow_unsafe_pickle)))
    if args.dino.lower() != "none" and exemplar is not None:
        wanted.append(("DINO", lambda: dino_score(result, exemplar, region, model=args.dino,
                                                  allow_unsafe_pickle=args.allow_unsafe_pickle)))
    for name, measure in wanted:
        try:
            scores |= measure()
        except ModelNotFoundError as error:
            note(f"{name} skipped: {error}")
    return {"model_based": scores} if scores else {}


def run(args: argparse.Namespace) -> int:
    import json
    import math

    from ..images import load_image, load_map
    from ..metrics import evaluate, format_report

    result, _ = load_image(args.result, name="result")
    source, _ = load_image(args.source, name="--source")
    if source.size != result.size:
        raise InputError(f"--source: size {source.size} differs from the result's {result.size}")
    strength, notes = load_map(args.map, name="--map", size=result.size, invert=args.invert_map)
    exemplar = None
    if args.exemplar:
        exemplar, _ = load_image(args.exemplar, name="--exemplar")
        if exemplar.size != result.size:
            notes.append(f"--exemplar: resized from {exemplar.width}x{exemplar.height} to the result's size")
            exemplar = exemplar.resize(result.size)
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
