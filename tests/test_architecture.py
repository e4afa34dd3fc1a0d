"""What the architecture promises: every family's adapter is called the same way."""

from __future__ import annotations

import inspect

from pixels.adapters import ADAPTERS, Adapter


def test_every_adapter_encodes_prompts_with_one_signature():
    expected = inspect.signature(Adapter.encode_prompt)
    assert list(expected.parameters) == ["self", "prompt", "negative_prompt", "guidance", "image_size",
                                         "prompt_images", "regions", "generator"]
    overriding = [adapter for adapter in ADAPTERS if "encode_prompt" in vars(adapter)]
    assert len(overriding) >= 5  # sd, sdxl, kandinsky, sd3, flux, pixel: not an empty walk
    for adapter in overriding:
        found = inspect.signature(adapter.encode_prompt)
        assert [(p.name, p.kind, p.default) for p in found.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in expected.parameters.values()], adapter.__name__
