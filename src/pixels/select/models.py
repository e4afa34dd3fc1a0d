"""Loading the selection models: short names (`pixels.models.catalog.SELECTION_MODELS`), hub ids and local
folders as written by `save_pretrained`, `.safetensors` weights only unless pickles are allowed, and a one-line
error naming the model and the command that fetches it when it is neither cached nor downloadable.

Which transformers class is loaded follows from the model's `config.json` (`model_type`) and the task it is
loaded for: "points" (clicks and boxes), "text" (phrases) or "depth".
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, ModelNotFoundError, first_line, short, unsafe_pickle
from ..files import read_text
from ..models.catalog import SELECTION_BY_NAME
from ..models.loading import HUB_ID, PICKLE_SUFFIXES

TASKS = ("points", "text", "depth")
CONFIG_LIMIT = 1024 * 1024  # bytes of a config.json or preprocessor_config.json

# config.json's model_type -> {task: (transformers class, kind)}; the kind says how pixels drives the model
ARCHITECTURES: dict[str, dict[str, tuple[str, str]]] = {
    "sam": {"points": ("SamModel", "sam")},
    "sam2": {"points": ("Sam2Model", "sam2")},
    "sam2_video": {"points": ("Sam2Model", "sam2")},
    "edgetam": {"points": ("EdgeTamModel", "sam2")},
    "edgetam_video": {"points": ("EdgeTamModel", "sam2")},
    "sam3_tracker": {"points": ("Sam3TrackerModel", "sam2")},
    "sam3_tracker_video": {"points": ("Sam3TrackerModel", "sam2")},
    "sam3": {"text": ("Sam3Model", "sam3")},
    "sam3_video": {"text": ("Sam3Model", "sam3"), "points": ("Sam3TrackerModel", "sam2")},
    "grounding-dino": {"text": ("GroundingDinoForObjectDetection", "grounding_dino")},
    "clipseg": {"text": ("CLIPSegForImageSegmentation", "clipseg")},
    "depth_anything": {"depth": ("DepthAnythingForDepthEstimation", "depth_anything")},
}


@dataclass
class LoadedModel:
    """A selection model ready to run: the module, what kind of model it is, where it came from."""

    name: str  # as the caller gave it (a short name, a hub id, a folder)
    source: str  # the folder or hub id it was loaded from
    kind: str  # "sam", "sam2" (SAM 2, EdgeTAM, the SAM 3 tracker), "sam3", "grounding_dino", "clipseg",
    # "depth_anything"
    model: Any
    config: dict  # config.json as read
    device: torch.device
    dtype: torch.dtype
    local_files_only: bool | None = None
    extras: dict = field(default_factory=dict)  # processors and tokenizers, loaded on first use
    # the image embeddings of the last photos a click model saw (`segment.click_candidates`), newest last
    embeddings: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def file(self, filename: str) -> Path | None:
        """A small file of the model beside its weights (preprocessor_config.json), or None if it has none."""
        folder = Path(self.source)
        if folder.is_dir():
            path = folder / filename
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.source, filename, local_files_only=bool(self.local_files_only)))
        except Exception:  # noqa: BLE001 - missing, not cached, or no network: the model has no such file here
            return None

    def json_file(self, filename: str) -> dict:
        """A JSON file of the model (see `file`) as a dict; {} when it has none."""
        path = self.file(filename)
        if path is None:
            return {}
        try:
            data = json.loads(read_text(path, "model", CONFIG_LIMIT))
        except ValueError as error:
            raise InputError(f"cannot read {str(path)!r}: {short(error)}", param="model") from None
        return data if isinstance(data, dict) else {}

    def pretrained(self, loader, what: str):
        """`loader.from_pretrained(source)` for a processor or a tokenizer of the model (cached on the model)."""
        if what not in self.extras:
            try:
                self.extras[what] = loader.from_pretrained(self.source, local_files_only=self.local_files_only)
            except Exception as error:  # noqa: BLE001 - transformers says "not found" in many ways
                raise InputError(f"{self.name!r} has no usable {what} ({first_line(error, 160)}); a folder needs the"
                                 f" {what} files written beside the weights by save_pretrained", param="model") from None
        return self.extras[what]


def shown(model: str) -> str:
    """A model as messages name it: the short name with its hub id, or the name given."""
    entry = SELECTION_BY_NAME.get(model)
    return f"{model} ({entry.repo})" if entry is not None else model


def not_available(model: str, repo: str, reason: BaseException, name: str) -> ModelNotFoundError:
    """The one-line error of a model neither in the local cache nor downloadable, with the command fetching it."""
    return ModelNotFoundError(
        f"{shown(model)!s} is not in the local Hugging Face cache and could not be downloaded"
        f" ({first_line(reason, 120)}); fetch it on a machine with network with `hf download {repo}` (then copy"
        f" ~/.cache/huggingface/hub here if this one is offline), or give the path of a local model folder",
        param=name,
    )


def _read_config(path: Path, name: str) -> dict:
    try:
        data = json.loads(read_text(path, name, CONFIG_LIMIT))
    except ValueError as error:
        raise InputError(f"cannot read {str(path)!r}: {short(error)}", param=name) from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise InputError(f"{str(path)!r} is not a transformers config: it names no model_type", param=name)
    return data


def _architecture(config: dict, task: str, model: str, name: str) -> tuple[str, str]:
    model_type = config["model_type"]
    found = ARCHITECTURES.get(model_type, {}).get(task)
    if found is None:
        usable = sorted(k for k, tasks in ARCHITECTURES.items() if task in tasks)
        does = sorted(ARCHITECTURES.get(model_type, {}))
        also = f" ({shown(model)} does {', '.join(does)})" if does else ""
        raise InputError(f"{shown(model)} is a {model_type!r} model, which cannot be used for {task}{also}; models"
                         f" for {task}: {', '.join(usable)}", param=name)
    return found


def load(model: str, task: str, *, device: torch.device, dtype: torch.dtype, allow_unsafe_pickle: bool = False,
         local_files_only: bool | None = None, name: str = "model") -> LoadedModel:
    """Load the selection model `model` (a short name, a hub id or a local folder) for `task`."""
    import transformers

    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {short(task)}", param="task")
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise InputError(f"expected a short name, a hub id or a folder, got {short(model)}", param=name)
    model = str(model)
    path = Path(model).expanduser()
    repo = model
    if not path.exists() and model in SELECTION_BY_NAME:  # a local folder of that name wins over the short name
        repo = SELECTION_BY_NAME[model].repo
        path = Path(repo)
    if local_files_only is None and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        local_files_only = True

    if path.is_file():
        raise InputError(f"{short(model)} is a file; a selection model is a folder with config.json and its weights"
                         " (as save_pretrained writes it), a hub id or a short name", param=name)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise InputError(f"{short(model)} is a folder without config.json; give a folder written by"
                             " save_pretrained", param=name)
        config = _read_config(config_path, name)
        weights = list(path.glob("*.safetensors"))
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if not weights and pickles and not allow_unsafe_pickle:
            raise unsafe_pickle(model, name)
        if not weights and not pickles:
            raise InputError(f"{short(model)} has config.json but no weights (.safetensors)", param=name)
        source = str(path)
    elif model.startswith((".", "/", "~")) or not HUB_ID.match(repo) or "/" not in repo:
        names = ", ".join(m.alias for m in SELECTION_BY_NAME.values() if task in m.tasks)
        raise ModelNotFoundError(f"no such folder, short name or hub id: {short(model)}; short names for {task}:"
                                 f" {names}", param=name)
    else:
        from huggingface_hub import hf_hub_download

        try:
            config_path = Path(hf_hub_download(repo, "config.json", local_files_only=bool(local_files_only)))
        except Exception as error:  # noqa: BLE001 - offline, not cached, gated, no such repository
            raise not_available(model, repo, error, name) from None
        config = _read_config(config_path, name)
        source = repo

    class_name, kind = _architecture(config, task, model, name)
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise InputError(f"{shown(model)} needs transformers' {class_name}, which transformers"
                         f" {transformers.__version__} does not have; upgrade transformers", param=name)
    try:
        loaded = cls.from_pretrained(source, dtype=dtype, local_files_only=local_files_only,
                                     use_safetensors=None if allow_unsafe_pickle else True)
    except Exception as error:  # noqa: BLE001 - loaders fail in their own ways on missing or corrupt files
        text = first_line(error)
        if not allow_unsafe_pickle and "safetensors" in text.lower() and not Path(source).is_dir():
            raise unsafe_pickle(model, name) from None
        if Path(source).is_dir():
            raise InputError(f"cannot load {short(model)} ({type(error).__name__}: {short(text, 160)}); a weight file"
                             " may be truncated or corrupt: copy or download the model again", param=name) from None
        raise not_available(model, repo, error, name) from None
    loaded = loaded.to(device).eval()
    return LoadedModel(model, source, kind, loaded, config, device, dtype, local_files_only)


# --- loaded once, reused -----------------------------------------------------------------------------------------

CACHE_SIZE = 4  # selection models kept loaded (a click model, a text model, a depth model and one more)
_cache: OrderedDict[tuple, LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


def cached(model: str, task: str, *, device: torch.device, dtype: torch.dtype, allow_unsafe_pickle: bool = False,
           local_files_only: bool | None = None, name: str = "model") -> LoadedModel:
    """`load`, once per (model, task, device, dtype, allow_unsafe_pickle, local_files_only): a batch of selections
    loads each model once; the least recently used of more than CACHE_SIZE models is let go."""
    key = (str(model), task, str(device), str(dtype), bool(allow_unsafe_pickle), local_files_only)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        loaded = load(model, task, device=device, dtype=dtype, allow_unsafe_pickle=allow_unsafe_pickle,
                      local_files_only=local_files_only, name=name)
        _cache[key] = loaded
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return loaded


def clear_cache() -> None:
    """Let go of every loaded selection model (their memory is freed once nothing else holds them)."""
    with _cache_lock:
        _cache.clear()
