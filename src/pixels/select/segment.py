"""Regions from clicks and boxes (SAM, SAM 2.1, EdgeTAM, the SAM 3 tracker) and from a phrase (SAM 3, GroundingDINO
boxes masked by a click model, CLIPSeg), each as binary (H, W) masks at the photo's size with a score.

Each driver prepares the model's input itself (`frame.Frame`), calls the model once, and brings its masks back to
the photo's size; `choose` keeps the ones `pick` asks for.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, short
from .frame import HALF, IMAGENET_MEAN, IMAGENET_STD, Frame
from .models import LoadedModel
from .tools import components

_embeddings_lock = threading.Lock()

DEFAULT_THRESHOLD = {"sam3": 0.5, "grounding_dino": 0.35, "clipseg": 0.4}  # score thresholds of the text models
TEXT_TOKENS = 32  # SAM 3 reads phrases padded to 32 tokens, as its processor pads them


@dataclass(frozen=True)
class Candidates:
    """Masks found for one object or one phrase: `masks` (K, H, W) bool at the photo's size, `scores` (K,)."""

    masks: np.ndarray
    scores: np.ndarray

    def record(self) -> list[dict]:
        return [{"score": round(float(s), 6), "pixels": int(m.sum())} for m, s in zip(self.masks, self.scores)]


def choose(found: Candidates, pick, what: str) -> tuple[np.ndarray, list[int]]:
    """The union of the candidates `pick` keeps, and their indices: "best" the highest score, "largest" the most
    pixels, "all" every one, k the k-th by score (1 is the best)."""
    count = len(found.scores)
    if count == 0:
        raise InputError(f"found no {what}", param="pick")
    by_score = sorted(range(count), key=lambda k: (-float(found.scores[k]), k))
    if pick == "best":
        chosen = [by_score[0]]
    elif pick == "largest":
        sizes = found.masks.reshape(count, -1).sum(axis=1)
        chosen = [int(np.argmax(sizes))]  # the first of equals, in the model's order
    elif pick == "all":
        chosen = sorted(by_score)
    else:
        if pick > count:
            raise InputError(f"asked for the {_ordinal(pick)} {what} by score, but there are only {count}",
                             param="pick")
        chosen = [by_score[pick - 1]]
    return np.logical_or.reduce(found.masks[chosen], axis=0), chosen


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _normalisation(loaded: LoadedModel, mean, std) -> dict:
    """The model's own normalisation (its preprocessor_config.json), or the family's published one."""
    pre = loaded.json_file("preprocessor_config.json")
    return {"mean": tuple(pre.get("image_mean", mean)), "std": tuple(pre.get("image_std", std)),
            "rescale": float(pre.get("rescale_factor", 1 / 255))}


# --- clicks and boxes --------------------------------------------------------------------------------------------


def click_frame(loaded: LoadedModel, size: tuple[int, int]) -> Frame:
    """Where a photo of `size` (W, H) lies in the click model's square input."""
    side = int(loaded.model.config.prompt_encoder_config.image_size)
    return Frame(size[0], size[1], side, "pad" if loaded.kind == "sam" else "stretch")


def click_inputs(frame: Frame, points, negative, boxes) -> dict[str, torch.Tensor]:
    """The click model's prompt tensors: clicks (1, 1, N, 2) with labels (1, 1, N), 1 for a positive click and
    0 for a negative one; boxes (1, B, 4) as (x0, y0, x1, y1); all in the input square's coordinates."""
    inputs: dict[str, torch.Tensor] = {}
    if points or negative:
        xy = frame.points([*points, *negative])
        inputs["input_points"] = torch.tensor(xy, dtype=torch.float32)[None, None]
        inputs["input_labels"] = torch.tensor([1] * len(points) + [0] * len(negative), dtype=torch.long)[None, None]
    if boxes:
        xyxy = [(x, y, x + w, y + h) for x, y, w, h in boxes]
        inputs["input_boxes"] = torch.tensor(frame.boxes(xyxy), dtype=torch.float32)[None]
    return inputs


EMBEDDINGS_KEPT = 4  # photos whose image embedding a click model keeps: the studio's clicks on one photo reuse it


def image_embeddings(loaded: LoadedModel, photo: Image.Image, pixels: torch.Tensor):
    """The click model's image embedding of `photo` (its input `pixels`), computed once per photo and model: every
    further click or box on the same photo runs only the prompt encoder and the mask decoder. A photo is known by
    its size and the digest of its pixels."""
    key = (photo.size, photo.mode, hashlib.blake2b(photo.tobytes(), digest_size=16).hexdigest())
    with _embeddings_lock:
        if key in loaded.embeddings:
            loaded.embeddings.move_to_end(key)
            return loaded.embeddings[key]
    found = loaded.model.get_image_embeddings(pixels.to(loaded.device, loaded.dtype))
    with _embeddings_lock:
        loaded.embeddings[key] = found
        while len(loaded.embeddings) > EMBEDDINGS_KEPT:
            loaded.embeddings.popitem(last=False)
    return found


@torch.no_grad()
def click_candidates(loaded: LoadedModel, photo: Image.Image, points=(), negative=(), boxes=()) -> list[Candidates]:
    """The click model's candidate masks (3 for each object: the clicks together, or each box) with their predicted
    IoU scores."""
    frame = click_frame(loaded, photo.size)
    mean, std = (HALF, HALF) if loaded.config.get("model_type", "").startswith("sam3") else (IMAGENET_MEAN, IMAGENET_STD)
    norm = _normalisation(loaded, mean, std)
    pixels = frame.pixels(photo, norm["mean"], norm["std"], norm["rescale"])
    inputs = {k: v.to(loaded.device) for k, v in click_inputs(frame, points, negative, boxes).items()}
    for key in ("input_points", "input_boxes"):
        if key in inputs:
            inputs[key] = inputs[key].to(loaded.dtype)
    out = loaded.model(image_embeddings=image_embeddings(loaded, photo, pixels), multimask_output=True, **inputs)
    masks = frame.masks(out.pred_masks[0].float().cpu()) > 0  # (objects, 3, H, W): logits above 0
    scores = out.iou_scores[0].float().cpu()
    return [Candidates(m.numpy(), s.numpy().astype(np.float64)) for m, s in zip(masks, scores)]


# --- a phrase ----------------------------------------------------------------------------------------------------


def _tokens(loaded: LoadedModel, text: str, **kwargs) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = loaded.pretrained(AutoTokenizer, "tokenizer")
    encoded = tokenizer([text], return_tensors="pt", truncation=True, **kwargs)
    return {k: v.to(loaded.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.no_grad()
def sam3_instances(loaded: LoadedModel, photo: Image.Image, text: str) -> Candidates:
    """SAM 3: every instance of the phrase (its queries), scored as its processor scores them (the query's score
    times the presence score), masks where the probability is above 0.5."""
    side = int(loaded.model.config.vision_config.backbone_config.image_size)
    frame = Frame(photo.width, photo.height, side, "stretch")
    norm = _normalisation(loaded, HALF, HALF)
    pixels = frame.pixels(photo, norm["mean"], norm["std"], norm["rescale"]).to(loaded.device, loaded.dtype)
    tokens = _tokens(loaded, text, padding="max_length", max_length=TEXT_TOKENS)
    tokens.pop("token_type_ids", None)
    out = loaded.model(pixel_values=pixels, **tokens)
    scores = out.pred_logits[0].float().sigmoid()
    if out.presence_logits is not None:
        scores = scores * out.presence_logits[0].float().sigmoid()
    masks = frame.masks(out.pred_masks[0].float().sigmoid().cpu()) > 0.5
    return Candidates(masks.numpy(), scores.cpu().numpy().astype(np.float64))


def _shortest_edge(pre: dict, width: int, height: int, shortest: int = 800, longest: int = 1333) -> tuple[int, int]:
    """(W, H) with the shorter side `shortest` and the longer at most `longest`, as GroundingDINO's processor
    resizes."""
    size = pre.get("size", {}) if isinstance(pre.get("size"), dict) else {}
    shortest, longest = int(size.get("shortest_edge", shortest)), int(size.get("longest_edge", longest))
    scale = shortest / min(width, height)
    if max(width, height) * scale > longest:
        scale = longest / max(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


@torch.no_grad()
def grounding_boxes(loaded: LoadedModel, photo: Image.Image, text: str) -> tuple[np.ndarray, np.ndarray]:
    """GroundingDINO: its boxes for the phrase as (N, 4) photo pixels (x0, y0, x1, y1), each scored by the
    highest probability of the phrase's tokens."""
    pre = loaded.json_file("preprocessor_config.json")
    norm = _normalisation(loaded, IMAGENET_MEAN, IMAGENET_STD)
    width, height = _shortest_edge(pre, photo.width, photo.height)
    resized = photo.convert("RGB").resize((width, height), Image.BILINEAR)
    values = (np.asarray(resized, np.float32) * np.float32(norm["rescale"]) - np.asarray(norm["mean"], np.float32)) \
        / np.asarray(norm["std"], np.float32)
    pixels = torch.from_numpy(values).permute(2, 0, 1)[None].contiguous().to(loaded.device, loaded.dtype)
    phrase = text.lower().strip()
    phrase = phrase if phrase.endswith(".") else phrase + "."  # the model reads phrases ending with a dot
    tokens = _tokens(loaded, phrase, padding=True)
    mask = torch.ones((1, height, width), dtype=torch.long, device=loaded.device)
    out = loaded.model(pixel_values=pixels, pixel_mask=mask, **tokens)
    length = int(tokens["attention_mask"][0].sum())
    scores = out.logits[0, :, :length].float().sigmoid().max(dim=-1).values.cpu().numpy().astype(np.float64)
    cx, cy, w, h = out.pred_boxes[0].float().cpu().numpy().astype(np.float64).T
    boxes = np.stack([(cx - w / 2) * photo.width, (cy - h / 2) * photo.height,
                      (cx + w / 2) * photo.width, (cy + h / 2) * photo.height], axis=1)
    boxes = np.clip(boxes, 0, [photo.width, photo.height, photo.width, photo.height])
    return boxes, scores


def grounded_instances(loaded: LoadedModel, masker: LoadedModel, photo: Image.Image, text: str, threshold: float
                       ) -> tuple[Candidates, list[dict]]:
    """GroundingDINO's boxes above `threshold`, each masked by the click model (its best candidate), scored by
    GroundingDINO; and the boxes as recorded."""
    boxes, scores = grounding_boxes(loaded, photo, text)
    keep = [k for k in range(len(scores)) if scores[k] > threshold
            and boxes[k, 2] - boxes[k, 0] >= 1 and boxes[k, 3] - boxes[k, 1] >= 1]
    found = [{"box": [round(float(v), 2) for v in boxes[k]], "score": round(float(scores[k]), 6)} for k in keep]
    if not keep:
        return Candidates(np.zeros((0, photo.height, photo.width), bool), np.zeros(0)), found
    xywh = [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for b in boxes[keep]]
    masks = [c.masks[int(np.argmax(c.scores))] for c in click_candidates(masker, photo, boxes=xywh)]
    return Candidates(np.stack(masks), scores[keep]), found


@torch.no_grad()
def clipseg_probability(loaded: LoadedModel, photo: Image.Image, text: str) -> np.ndarray:
    """CLIPSeg: the probability (H, W) that each photo pixel shows the phrase."""
    side = int(loaded.model.config.vision_config.image_size)
    frame = Frame(photo.width, photo.height, side, "stretch")
    norm = _normalisation(loaded, IMAGENET_MEAN, IMAGENET_STD)
    pixels = frame.pixels(photo, norm["mean"], norm["std"], norm["rescale"]).to(loaded.device, loaded.dtype)
    tokens = _tokens(loaded, text, padding=True)
    tokens.pop("token_type_ids", None)
    logits = loaded.model(pixel_values=pixels, **tokens).logits
    logits = logits.reshape(-1, *logits.shape[-2:])[:1].float().sigmoid().cpu()
    return frame.masks(logits)[0].numpy().astype(np.float64)


def clipseg_instances(loaded: LoadedModel, photo: Image.Image, text: str, threshold: float) -> Candidates:
    """CLIPSeg's region above `threshold`, one instance per connected part, scored by its mean probability."""
    probability = clipseg_probability(loaded, photo, text)
    labels, count = components(probability > threshold, connectivity=8)
    if count == 0:
        return Candidates(np.zeros((0, photo.height, photo.width), bool), np.zeros(0))
    masks = np.stack([labels == k for k in range(1, count + 1)])
    sums = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=count + 1)[1:]
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return Candidates(masks, sums / sizes)


def text_instances(loaded: LoadedModel, photo: Image.Image, text: str, threshold: float,
                   masker: LoadedModel | None = None) -> tuple[Candidates, dict]:
    """Every instance of the phrase the text model finds with a score above `threshold`, and what to record."""
    extra: dict = {}
    if loaded.kind == "sam3":
        found = sam3_instances(loaded, photo, text)
        keep = found.scores > threshold
        extra["scores"] = [round(float(s), 6) for s in found.scores]
        found = Candidates(found.masks[keep], found.scores[keep])
    elif loaded.kind == "grounding_dino":
        assert masker is not None
        found, boxes = grounded_instances(loaded, masker, photo, text, threshold)
        extra["boxes"] = boxes
    else:
        found = clipseg_instances(loaded, photo, text, threshold)
    if len(found.scores) == 0:
        best = max(extra.get("scores", [0.0]) or [0.0])
        hint = f" (the best scored {best:g})" if loaded.kind == "sam3" else ""
        raise InputError(f"found nothing that {short(text)} describes with a score above {threshold:g}{hint};"
                         " lower the threshold or reword the phrase", param="text")
    return found, extra
