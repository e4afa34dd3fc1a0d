"""pixels: exemplar-based, progressive image editing with off-the-shelf diffusion models (PIXELS)."""

__version__ = "0.1.0"

from .editor import EditResult, EditSettings, Editor, Exemplar  # noqa: E402
from .errors import InputError, ModelNotFoundError, PixelsError, UnsafeCheckpointError  # noqa: E402

__all__ = [
    "EditResult", "EditSettings", "Editor", "Exemplar",
    "InputError", "ModelNotFoundError", "PixelsError", "UnsafeCheckpointError", "__version__",
]
