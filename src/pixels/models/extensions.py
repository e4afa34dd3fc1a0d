"""Loading what extends a model: LoRAs (through diffusers' peft integration), an IP-Adapter with its image
encoder, and a ControlNet. Each keeps the safety rules of model loading: `.safetensors` only unless
pickles are allowed, and a clear error naming the flag when a model is neither local nor downloadable."""

from __future__ import annotations

from typing import Any

from ..errors import InputError, ModelNotFoundError, UnsafeCheckpointError, first_line, short, unsafe_pickle
from ..limits import finite


def _failed(what: str, model: Any, error: BaseException, param: str) -> InputError:
    text = first_line(error, 160)
    if "safetensors" in text.lower():
        return unsafe_pickle(model, param)
    return ModelNotFoundError(
        f"{what} {short(model)} is not available ({text}); download it once with"
        f" `hf download {model}` on a machine with network, or give a local folder or file", param=param)


def _check_family(adapter, takes: str, what: str, param: str) -> None:
    """Refuse an extension the adapter's family cannot take (`takes`: the adapter attribute that says so)."""
    from ..adapters import ADAPTERS

    if not getattr(adapter, takes):
        families = sorted({a.family for a in ADAPTERS if getattr(a, takes)})
        raise InputError(f"{what} is supported for {' and '.join(f.upper() for f in families)} models; this is a"
                         f" {adapter.family} model", param=param)


def check_scale(value: Any, param: str, low: float, high: float) -> float:
    number = finite(value) if isinstance(value, (int, float)) else None
    if number is None or not low <= number <= high:
        raise InputError(f"expected a number in [{low:g}, {high:g}], got {short(value)}", param=param)
    return number


def load_lora(adapter, model: str, name: str, *, weight_name: str | None = None, allow_unsafe_pickle: bool = False,
              local_files_only: bool | None = None) -> None:
    """Load a LoRA into the adapter's pipeline under `name` (diffusers' load_lora_weights: peft)."""
    pipe = adapter.pipe
    if not hasattr(pipe, "load_lora_weights"):
        raise InputError(f"this {adapter.family} model takes no LoRA", param="lora")
    if weight_name is not None and not weight_name.endswith(".safetensors") and not allow_unsafe_pickle:
        raise UnsafeCheckpointError(f"{short(weight_name)} is a pickle file, which can run arbitrary code when"
                                    " loaded; use its .safetensors version or allow pickles", param="lora")
    kwargs: dict[str, Any] = {"adapter_name": name, "local_files_only": bool(local_files_only)}
    if weight_name is not None:
        kwargs["weight_name"] = weight_name
    if not allow_unsafe_pickle:
        kwargs["use_safetensors"] = True
    try:
        pipe.load_lora_weights(model, **kwargs)
    except ImportError as error:
        raise InputError(f"LoRAs need peft: pip install 'pixels[extensions]' ({short(str(error), 120)})",
                         param="lora") from None
    except (OSError, ValueError, KeyError) as error:
        raise _failed("LoRA", model, error, "lora") from None


def load_ip_adapter(adapter, model: str, *, weight_name: str, subfolder: str = "", image_encoder: str | None = None,
                    allow_unsafe_pickle: bool = False, local_files_only: bool | None = None) -> None:
    """Load an IP-Adapter (diffusers' load_ip_adapter) and its CLIP image encoder: `image_encoder` when given,
    else the `image_encoder` folder beside the weights, as diffusers looks for it; safetensors only."""
    from transformers import CLIPVisionModelWithProjection

    _check_family(adapter, "takes_ip_adapter", "An IP-Adapter", "ip_adapter")
    if not weight_name.endswith(".safetensors") and not allow_unsafe_pickle:
        raise UnsafeCheckpointError(f"{short(weight_name)} is a pickle file, which can run arbitrary code when"
                                    " loaded; use the .safetensors weights of the IP-Adapter or allow pickles",
                                    param="ip_adapter")
    pipe = adapter.pipe
    weights = {"local_files_only": bool(local_files_only), "dtype": adapter.dtype}
    if not allow_unsafe_pickle:
        weights["use_safetensors"] = True
    if getattr(pipe, "image_encoder", None) is None:
        source, folder = (image_encoder, "") if image_encoder else (model, f"{subfolder}/image_encoder".strip("/"))
        try:
            encoder = CLIPVisionModelWithProjection.from_pretrained(source, subfolder=folder, **weights)
        except (OSError, ValueError) as error:
            raise _failed("image encoder", source, error, "image_encoder") from None
        pipe.register_modules(image_encoder=encoder.to(adapter.device))
    try:
        pipe.load_ip_adapter(model, subfolder=subfolder, weight_name=weight_name, image_encoder_folder=None,
                             local_files_only=bool(local_files_only))
    except (OSError, ValueError, KeyError) as error:
        raise _failed("IP-Adapter", model, error, "ip_adapter") from None


def load_controlnet(adapter, model: Any, *, allow_unsafe_pickle: bool = False,
                    local_files_only: bool | None = None) -> None:
    """Attach a ControlNet (a hub id, a folder, or a loaded ControlNetModel) to the adapter's model call."""
    from diffusers import ControlNetModel

    _check_family(adapter, "takes_controlnet", "ControlNet", "controlnet")
    if isinstance(model, ControlNetModel):
        net = model
    else:
        kwargs: dict[str, Any] = {"local_files_only": bool(local_files_only), "dtype": adapter.dtype}
        if not allow_unsafe_pickle:
            kwargs["use_safetensors"] = True
        try:
            net = ControlNetModel.from_pretrained(model, **kwargs)
        except (OSError, ValueError) as error:
            raise _failed("ControlNet", model, error, "controlnet") from None
    if net.config.cross_attention_dim != adapter.denoiser.config.cross_attention_dim:
        raise InputError(f"the ControlNet's cross-attention width ({net.config.cross_attention_dim}) is not its model's"
                         f" ({adapter.denoiser.config.cross_attention_dim}): it belongs to another family",
                         param="controlnet")
    adapter.controlnet = net.to(adapter.device, adapter.dtype).eval()
