"""Finding and loading models: hub ids, local diffusers folders, single-file checkpoints.

Loading itself is diffusers' `from_pretrained` / `from_single_file`; this module picks the family,
refuses pickle files unless asked, and turns "not available offline" into an actionable error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from ..adapters import SUPPORTED_PIPELINES, adapter_class, single_file_pipeline
from ..errors import InputError, ModelNotFoundError, UnsafeCheckpointError, first_line, short, unsafe_pickle
from ..files import read_text
from .catalog import BY_NAME

BUNDLED = {"demo": "demo/weights"}  # name -> folder inside the package
INDEX_LIMIT = 1024 * 1024  # bytes of a model_index.json
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROC_FD = "/proc/self/fd"  # Linux: every open file and folder under a path of digits (see `_loadable`)
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


DEVICE = re.compile(r"^(?P<type>auto|cpu|cuda|mps)(:(?P<index>\d{1,3}))?$")


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device (`cuda:1`) must be available."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    match = DEVICE.match(name)
    if match is None or (match["type"] == "auto" and match["index"] is not None):
        raise InputError(
            f"unknown device {short(device)}; choose one of {', '.join(DEVICES)}, optionally with an index"
            " (cuda:1)", param="device"
        )
    kind, index = match["type"], match["index"]
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"{device!r} requested but this PyTorch build sees no CUDA GPU; use device='cpu'", param="device"
            )
        if index is not None and int(index) >= torch.cuda.device_count():
            raise InputError(
                f"{device!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) are visible", param="device"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError("'mps' requested but Metal is not available here; use device='cpu'", param="device")
    return torch.device(name)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' is fp16 on GPUs and fp32 on the CPU (where half precision is slow or unsupported)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).lower()
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise InputError(f"unknown dtype {short(dtype)}; choose one of auto, fp32, fp16, bf16", param="dtype")
    return DTYPES[name]


def _not_available(model: str, reason: BaseException) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {model!r} is not available: it is not in the local Hugging Face cache and could not be"
        f" downloaded ({first_line(reason)}).\n"
        f"  - on a machine with network, download it once:  hf download {model}\n"
        f"    (the cache is ~/.cache/huggingface/hub, or $HF_HOME; copy it over for offline use)\n"
        f"  - or give the path of a local diffusers folder or of a .safetensors checkpoint as the model"
    )


def _read_index(folder: Path, name: str = "model") -> dict:
    index = folder / "model_index.json"
    if not index.is_file():
        raise InputError(
            f"{str(folder)!r} is a folder but has no model_index.json; give a diffusers"
            " pipeline folder (as written by save_pretrained) or a .safetensors checkpoint", param=name
        )
    return _parse_index(index, name)


def _parse_index(index: Path, name: str = "model") -> dict:
    """A model_index.json of the shape diffusers expects: a JSON object whose `_class_name` (if any) is a
    pipeline class name, and whose component entries are [library, class] pairs."""
    try:
        data = json.loads(read_text(index, name, INDEX_LIMIT))
    except ValueError as error:  # JSONDecodeError
        raise InputError(f"cannot read {str(index)!r}: {short(error)}", param=name) from None
    if not isinstance(data, dict):
        raise InputError(
            f"cannot read {str(index)!r}: expected a JSON object, got {type(data).__name__}", param=name
        )
    pipeline = data.get("_class_name", "?")  # missing: refused as an unsupported family, with the list
    if not isinstance(pipeline, str):
        raise InputError(f"cannot read {str(index)!r}: '_class_name' must be a pipeline class name (a string),"
                         f" got {short(pipeline)}", param=name)
    for key in _components(pipeline):
        entry = data.get(key, [None, None])
        if not (isinstance(entry, list) and len(entry) == 2 and (
                entry[0] is None or all(isinstance(part, str) for part in entry))):
            raise InputError(f"cannot read {str(index)!r}: component {key!r} must be a [library, class] pair such"
                             f" as [\"diffusers\", \"UNet2DModel\"] (or [null, null]), got {short(entry)}",
                             param=name)
    return data


def _components(pipeline: str) -> list[str]:
    """The component names of a supported diffusers pipeline class, which model_index.json maps to [library,
    class] pairs: its required constructor arguments and its optional components (none for other classes)."""
    import inspect

    import diffusers

    if pipeline not in SUPPORTED_PIPELINES or not hasattr(diffusers, pipeline):
        return []
    cls = getattr(diffusers, pipeline)
    optional = set(getattr(cls, "_optional_components", None) or ())
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and (p.default is p.empty or p.name in optional)]


def _hub_index(model: str, local_files_only: bool | None, name: str = "model") -> dict:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        path = hf_hub_download(model, "model_index.json", local_files_only=bool(local_files_only))
    except (OSError, HfHubHTTPError, ValueError) as error:
        raise _not_available(model, error) from None
    return _parse_index(Path(path), name)


def bundled_model(name: str) -> Path | None:
    """The folder of a model that ships inside the package (`demo`), or None for any other name."""
    if name not in BUNDLED:
        return None
    from importlib import resources

    folder = Path(str(resources.files("pixels").joinpath(BUNDLED[name])))
    if not (folder / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"the bundled {name!r} model is missing from this installation ({folder}); reinstall pixels,"
            " or rebuild it with scripts/train_demo_model.py", param="model"
        )
    return folder


def single_file_class(path: Path) -> str:
    """Pipeline class of an original-layout (A1111/ComfyUI) checkpoint, from its tensor names (the adapters
    say which names are theirs)."""
    if path.suffix != ".safetensors":
        return single_file_pipeline(None)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise InputError(f"{str(path)!r} is not a readable .safetensors file: {error}", param="model") from None
    return single_file_pipeline(keys)


def load_pipeline(
    model: str,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    allow_unsafe_pickle: bool = False,
    local_files_only: bool | None = None,
    config: str | None = None,
    components: dict | None = None,
    name: str = "model",
):
    """Load an img2img diffusers pipeline for `model` (hub id, diffusers folder or checkpoint file).

    components: already loaded modules to reuse instead of loading them (e.g. a shared VAE);
    name: the argument named in error messages. dtype None: the family's preferred GPU precision.
    """
    import diffusers

    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise InputError(f"expected a hub id or a path, got {model!r}", param=name)
    model = str(model)
    path = bundled_model(model) or Path(model).expanduser()
    if not path.exists() and model in BY_NAME:  # a short name (a local file or folder of that name wins)
        model = BY_NAME[model].repo
        path = Path(model)
    common = {"dtype": torch.float16 if dtype is None else dtype, **(components or {})}

    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_unsafe_pickle:
            raise UnsafeCheckpointError(
                f"{model!r} is a pickle checkpoint, and loading a pickle can run arbitrary code;"
                " convert it to .safetensors, or pass allow_unsafe_pickle=True if you trust its source", param=name
            )
        if path.suffix.lower() not in PICKLE_SUFFIXES + (".safetensors",):
            raise InputError(f"{model!r} is neither a .safetensors checkpoint nor a diffusers folder", param=name)
        cls = getattr(diffusers, single_file_class(path))
        kwargs = dict(common, config=config) if config else common
        try:
            pipe = cls.from_single_file(str(path), local_files_only=local_files_only, **kwargs)
        except (OSError, ValueError) as error:
            raise ModelNotFoundError(
                f"could not build a pipeline from {model!r}: {first_line(error)}\n"
                "  single-file checkpoints need their architecture's diffusers config: pass config='FOLDER' with"
                " a local diffusers folder (or a cached hub id) of the same family", param=name
            ) from None
        return pipe.to(device)

    if path.is_dir():
        index = _read_index(path, name)
        source = str(path)
    elif path.suffix.lower() in PICKLE_SUFFIXES + (".safetensors",) or model.startswith((".", "/", "~")) \
            or not HUB_ID.match(model):
        raise ModelNotFoundError(f"no such file or folder: {model!r}", param=name)
    else:
        index = _hub_index(model, local_files_only, name)
        source = model

    family = adapter_class(index.get("_class_name", "?"), model)
    kwargs = dict(common, use_safetensors=None if allow_unsafe_pickle else True)
    if dtype is None:  # "auto" on a GPU: the precision the family is published in
        kwargs["dtype"] = family.preferred_dtype
    with _loadable(source, path.is_dir(), name) as where:
        try:
            pipe = family.load(where, local_files_only=local_files_only, **kwargs)
        except Exception as error:  # noqa: BLE001 - loaders fail in their own ways on missing or corrupt files
            text = first_line(error)
            only_pickles = path.is_dir() and any(  # a component folder with pickle weights and no .safetensors
                not any(part.glob("*.safetensors")) and any(p.suffix in PICKLE_SUFFIXES for p in part.iterdir())
                for part in [path, *(d for d in path.iterdir() if d.is_dir())])
            if not allow_unsafe_pickle and (only_pickles or (not path.is_dir() and "safetensors" in text.lower())):
                raise unsafe_pickle(model, name) from None
            if path.is_dir():
                raise InputError(f"cannot load {model!r} ({type(error).__name__}: {short(text, 200)}); a weight file"
                                 " may be truncated or corrupt: copy or download the model again", param=name) from None
            if not isinstance(error, (OSError, ValueError)):
                raise
            raise _not_available(model, error) from None
    _named(pipe, where, source)
    return pipe.to(device)


@contextlib.contextmanager
def _loadable(source: str, local: bool, name: str) -> Iterator[str]:
    """`source` as the loaders can take it. That is `source` itself, except for a local folder whose path is
    not valid UTF-8 text (on Linux, a name made of other bytes, which Python holds as surrogate escapes):
    safetensors opens only UTF-8 paths, so such a folder is opened and loaded through /proc/self/fd, the
    very folder under a path of digits; where there is no /proc it is refused, naming the path."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield source
        return
    if not local or not os.path.isdir(PROC_FD):
        raise InputError(f"{source!r}: the weights loader takes only paths that are valid UTF-8 text, and this"
                         " one is not; rename the folder (or a folder above it)", param=name)
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield f"{PROC_FD}/{fd}"
    finally:
        os.close(fd)


def _named(pipe, where: str, source: str) -> None:
    """Record `source`, not the alias it was loaded through, as the pipeline's and its components' origin."""
    if where == source:
        return
    for part in [pipe, *getattr(pipe, "components", {}).values()]:
        config = getattr(part, "config", None)
        origin = getattr(config, "_name_or_path", None) if config is not None else None
        if hasattr(part, "register_to_config") and isinstance(origin, str) and origin.startswith(where):
            part.register_to_config(_name_or_path=source + origin[len(where):])
