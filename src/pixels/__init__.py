"""pixels: exemplar-based, progressive image editing with off-the-shelf diffusion models (PIXELS).

    from pixels import Editor, Exemplar
    editor = Editor.from_pretrained("path/or/hub-id")
    result = editor.edit(photo, exemplars=[Exemplar(reference, strength_map=where)], seed=0)

Heavy imports (torch, diffusers) happen on first use of the names below, so `pixels --version`
and `import pixels` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "EditResult": ".core.settings", "EditSettings": ".core.settings", "Editor": ".editor",
    "Exemplar": ".core.settings", "Region": ".core.settings", "EditSession": ".session", "MemoryOptions": ".models.memory",
    "InputError": ".errors", "ModelNotFoundError": ".errors", "PixelsError": ".errors",
    "UnsafeCheckpointError": ".errors", "ResourceError": ".errors", "NonFiniteError": ".errors",
    "Limits": ".limits", "Control": ".core.control", "EditJob": ".inputs.job", "plan_edit": ".inputs.job",
    "Select": ".select", "Selection": ".select", "resolve_selection": ".select",
}
_MODULES = {"maps": ".inputs.maps"}  # the map tools, part of the public API as `pixels.maps`
__all__ = [*_EXPORTS, *_MODULES, "__version__"]

if TYPE_CHECKING:
    from .core.control import Control
    from .core.settings import EditResult, EditSettings, Exemplar, Region
    from .editor import Editor
    from .errors import (
        InputError,
        ModelNotFoundError,
        NonFiniteError,
        PixelsError,
        ResourceError,
        UnsafeCheckpointError,
    )
    from .inputs import maps
    from .inputs.job import EditJob, plan_edit
    from .limits import Limits
    from .models.memory import MemoryOptions
    from .select import Select, Selection, resolve_selection
    from .session import EditSession


def __getattr__(name: str):
    if name in _MODULES:
        module = importlib.import_module(_MODULES[name], __name__)
        globals()[name] = module
        return module
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pixels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
