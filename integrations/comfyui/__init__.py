"""PIXELS for ComfyUI: exemplar-based editing with per-pixel strength (PIXELS, arXiv 2501.09826) as nodes.

Install this folder into ComfyUI's custom_nodes/ and `pip install` pixels into ComfyUI's environment. The nodes
use ComfyUI's own MODEL, LATENT, IMAGE, MASK and VAE, and pixels' model-free rules (release schedule, placement,
graft, maps); any ComfyUI sampler and scheduler runs the edit.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .exemplar import PixelsExemplar
from .maps import MAP_NODES
from .paste import PixelsPasteBack
from .regional_lora import PixelsRegionalLoRA
from .selection import PixelsSelect
from .surgery import PixelsSurgery

NODES: list[type[io.ComfyNode]] = [PixelsExemplar, PixelsSurgery, PixelsPasteBack, *MAP_NODES, PixelsSelect,
                                 PixelsRegionalLoRA]


class PixelsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> PixelsExtension:
    return PixelsExtension()


# the classic export, for tools that read these mappings
NODE_CLASS_MAPPINGS = {node.GET_SCHEMA().node_id: node for node in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {node.GET_SCHEMA().node_id: node.GET_SCHEMA().display_name for node in NODES}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint"]
