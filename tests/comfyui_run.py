"""The ComfyUI side of tests/test_comfyui.py, run in a child process: `python tests/comfyui_run.py JOB.json`.

It imports the ComfyUI tree (COMFYUI_PATH) with the PIXELS node pack, builds tiny random models, runs the example
workflow through ComfyUI's own executor and the nodes through ComfyUI's own samplers, and writes what it saw
(latents, per-step masks, images, error messages) to JOB["dump"] (.npz) and JOB["report"] (.json). It checks
nothing itself: the test process compares the results with pixels' own functions.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import comfyui_env
import numpy as np

SEED = 7
MODEL_LAYERS = ("diffusers", "pixels.models", "pixels.editor", "pixels.session", "pixels.core.prepare")


def load_graph_module():
    """integrations/comfyui/workflows/graph.py, which turns the API prompt into the editor's graph."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pixels_comfyui_graph", comfyui_env.PACK / "workflows" / "graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def editor_graph(mappings: dict, workflow: Path) -> dict:
    """The editor's graph of the API-format `workflow`, from the node definitions ComfyUI loaded."""
    graph = load_graph_module()
    prompt = json.loads(workflow.read_text())
    return graph.ui_graph(prompt, graph.definitions(mappings, [n["class_type"] for n in prompt.values()]))


def write_editor_graph(out: str) -> None:
    """`python tests/comfyui_run.py --ui-graph OUT.json`: rewrite the shipped editor graph (COMFYUI_PATH set)."""
    mappings = comfyui_env.start(os.environ["COMFYUI_PATH"])
    graph = editor_graph(mappings, comfyui_env.PACK / "workflows" / "pixels_exemplar_api.json")
    Path(out).write_text(json.dumps(graph, indent=1) + "\n")


def main(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    mappings = comfyui_env.start(job["comfyui"])
    report_graph = editor_graph(mappings, Path(job["workflow"]))
    import folder_paths
    import torch

    model, clip, vae = comfyui_env.tiny_models()
    mappings["PixelsTestTinyCheckpoint"] = tiny_checkpoint_node(model, clip, vae)
    folder_paths.set_input_directory(job["input_dir"])
    folder_paths.set_output_directory(job["output_dir"])
    dump: dict[str, np.ndarray] = {}
    report: dict = {"nodes": sorted(k for k in mappings if k.startswith("Pixels")), "ui_graph": report_graph,
                    "model_layers": sorted(m for m in MODEL_LAYERS if m in sys.modules)}

    report["entrypoint_nodes"] = entrypoint_nodes()
    report["workflow"] = run_workflow(json.loads(Path(job["workflow"]).read_text()))
    broken = json.loads(Path(job["workflow"]).read_text())
    exemplar_node = next(k for k, v in broken.items() if v["class_type"] == "PixelsExemplar")
    broken[exemplar_node]["inputs"].update({"x": 5000, "y": 5000})
    report["broken_workflow"] = run_workflow(broken, save=False)

    with torch.inference_mode():
        nodes = Nodes(mappings, model, clip, vae, job)
        nodes.grafts(dump)
        nodes.masks(dump, report)
        nodes.differential_diffusion(dump)
        nodes.reference_loop(dump)
        nodes.regional_text(dump)
        nodes.regional_lora(dump, report)
        report["errors"] = nodes.errors()
    np.savez(job["dump"], **{k: v.detach().cpu().numpy() if hasattr(v, "detach") else v for k, v in dump.items()})
    Path(job["report"]).write_text(json.dumps(report, indent=1))


def tiny_checkpoint_node(model, clip, vae):
    """A test-only loader node standing in for CheckpointLoaderSimple: same input, same outputs, tiny models."""
    class PixelsTestTinyCheckpoint:
        RETURN_TYPES = ("MODEL", "CLIP", "VAE")
        FUNCTION = "load"
        CATEGORY = "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"ckpt_name": ("STRING", {"default": ""})}}

        def load(self, ckpt_name):
            return model, clip, vae
    return PixelsTestTinyCheckpoint


def entrypoint_nodes() -> list[str]:
    """The node ids the pack's comfy_entrypoint extension lists (the V3 way of loading it)."""
    pack = next(m for name, m in sys.modules.items() if name.endswith("comfyui") and hasattr(m, "comfy_entrypoint"))
    extension = asyncio.run(pack.comfy_entrypoint())
    return sorted(node.GET_SCHEMA().node_id for node in asyncio.run(extension.get_node_list()))


class Server:
    """What ComfyUI's executor needs of its server when no client is connected."""

    client_id = None
    last_node_id = None

    def send_sync(self, event, data, sid=None):
        pass


def run_workflow(prompt: dict, save: bool = True) -> dict:
    """Validate and execute an API-format workflow with ComfyUI's PromptExecutor; the checkpoint loader is the
    test-only tiny one, every other node is the workflow's own."""
    import execution

    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["class_type"] = "PixelsTestTinyCheckpoint"
    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    result = {"valid": bool(valid), "validation_error": error, "node_errors": node_errors}
    if not valid:
        return result
    executor = execution.PromptExecutor(Server())
    executor.execute(prompt, prompt_id, {}, outputs)
    result["success"] = executor.success
    result["messages"] = [[event, {k: v for k, v in data.items() if k in ("node_id", "node_type", "exception_message",
                                                                          "exception_type")}]
                          for event, data in executor.status_messages]
    result["images"] = [image["filename"] for entry in executor.history_result.get("outputs", {}).values()
                        for image in entry.get("images", [])] if save else []
    return result


class Nodes:
    """The pack's nodes called through ComfyUI's node classes, with ComfyUI's samplers."""

    def __init__(self, mappings, model, clip, vae, job) -> None:
        import nodes
        from PIL import Image

        self.m, self.model, self.clip, self.vae, self.job = mappings, model, clip, vae, job
        self.more_errors: dict = {}  # bad inputs of later sections, reported with errors()
        self.nodes = nodes
        load = lambda path: nodes.LoadImage().load_image(Path(path).name)[0]  # noqa: E731
        folder = Path(job["input_dir"])
        self.source = load(folder / job["source"])
        self.exemplar = load(folder / job["exemplar"])
        self.canvases = [torch_image(Image.open(p)) for p in job["canvases"]]
        self.positive = nodes.CLIPTextEncode().encode(clip, "a red ball")[0]
        self.negative = nodes.CLIPTextEncode().encode(clip, "")[0]
        self.latent = nodes.VAEEncode().encode(vae, self.source)[0]

    def run(self, node_id: str, **inputs):
        return self.m[node_id].execute(**inputs).args

    def place(self, placement, box, fit="cover", region=None, alpha=None, image=None, exemplars=None):
        x, y, w, h = box
        return self.run("PixelsExemplar", image=self.exemplar if image is None else image, source=self.source,
                        vae=self.vae, placement=placement, x=x, y=y, width=w, height=h, fit=fit, alpha=alpha,
                        region=region, exemplars=exemplars)[0]

    def mask(self, name: str):
        import torch

        return torch.from_numpy(np.load(self.job["maps"])[name]).float()[None]

    def grafts(self, dump: dict) -> None:
        """Latents: the source's, each canvas pixels placed (encoded by this VAE), and the grafted ones."""
        dump["source_latent"] = self.latent["samples"]
        for k, canvas in enumerate(self.canvases):
            dump[f"canvas_latent_{k}"] = self.vae.encode(canvas)
        boxes = self.job["boxes"]
        chain = self.place("box", boxes[0], fit="cover")
        chain = self.place("box", boxes[1], fit="contain", exemplars=chain)
        strength = self.mask("gradient")
        for mode in ("paper", "blend"):
            _, latent, combined = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode=mode,
                                           release="reference", strength=strength, exemplars=chain)
            dump[f"grafted_{mode}"] = latent["samples"]
            dump[f"noise_mask_{mode}"] = latent["noise_mask"]
            dump[f"combined_{mode}"] = combined
        auto = self.place("auto", (0, 0, 1, 1), region=self.mask("region"))
        _, latent, _ = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                release="reference", strength=None, exemplars=auto)
        dump["grafted_auto"] = latent["samples"]

    def sample(self, model, latent, steps=6, denoise=0.7, sampler="euler", scheduler="normal", cfg=4.0):
        return self.nodes.common_ksampler(model, SEED, steps, cfg, sampler, scheduler, self.positive, self.negative,
                                          latent, denoise=denoise)[0]["samples"]

    def masks(self, dump: dict, report: dict) -> None:
        """The mask the patched model applies at every model call, with the sigma it was called at."""
        strength = self.mask("gradient")
        runs = []
        for release in ("reference", "current"):
            for sampler, scheduler, steps, denoise in (("euler", "normal", 8, 0.75), ("dpmpp_2m", "karras", 5, 1.0),
                                                       ("euler_ancestral", "simple", 7, 0.6)):
                patched, latent, _ = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                              release=release, strength=strength, exemplars=None)
                calls = []
                rule = patched.model_options["denoise_mask_function"]

                def record(sigma, denoise_mask, extra_options, rule=rule, calls=calls):
                    out = rule(sigma, denoise_mask, extra_options)
                    calls.append((float(sigma.reshape(-1)[0]), extra_options["sigmas"].clone(), out[0, 0].clone(),
                                  tuple(out.shape), tuple(denoise_mask.shape)))
                    return out
                patched.set_model_denoise_mask_function(record)
                self.sample(patched, latent, steps, denoise, sampler, scheduler)
                name = f"{release}_{sampler}"
                dump[f"masks_{name}"] = np.stack([c[2].numpy() for c in calls])
                dump[f"call_sigmas_{name}"] = np.array([c[0] for c in calls])
                dump[f"sigmas_{name}"] = calls[0][1].numpy()
                runs.append({"name": name, "release": release, "steps": steps, "calls": len(calls),
                             "shapes": sorted({(c[3], c[4]) for c in calls})})
        report["mask_runs"] = runs

    def differential_diffusion(self, dump: dict) -> None:
        """A binary, latent-aligned map and no exemplar: PIXELS (release reference) beside ComfyUI's own
        DifferentialDiffusion + SetLatentNoiseMask, and a plain unmasked run."""
        strength = self.mask("binary")
        patched, latent, _ = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                      release="reference", strength=strength, exemplars=None)
        dump["dd_pixels"] = self.sample(patched, latent)
        diffdiff = self.m["DifferentialDiffusion"].execute(model=self.model).args[0]
        masked = self.nodes.SetLatentNoiseMask().set_mask(self.latent, strength)[0]
        dump["dd_comfyui"] = self.sample(diffdiff, masked)
        dump["dd_plain"] = self.sample(self.model, self.latent)

    def reference_loop(self, dump: dict) -> None:
        """The PIXELS-patched KSampler (euler) beside pixels' own loop, `pixels.core.loop.denoise`, driving the
        same ComfyUI model through ComfyUI's sampler wrapper with an Euler step in sigma space, on the same
        noise, graft and keep map."""
        import comfy.sample
        import comfy.samplers

        from pixels.core.loop import Stage, Surgery, denoise
        from pixels.core.release import to_latent_map

        chain = self.place("box", self.job["boxes"][0], fit="cover")
        strength = self.mask("gradient")
        steps, denoise_strength = 6, 0.7
        for release in ("reference", "current"):
            patched, latent, combined = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                                 release=release, strength=strength, exemplars=chain)
            dump[f"loop_comfyui_{release}"] = self.sample(patched, latent, steps, denoise_strength)
        sampler = comfy.samplers.KSampler(self.model, steps=steps, device="cpu", sampler="euler", scheduler="normal",
                                          denoise=denoise_strength)
        sigmas = sampler.sigmas
        noise = comfy.sample.prepare_noise(latent["samples"], SEED)
        process = self.model.model.process_latent_in
        keep = to_latent_map(1.0 - combined[0].double().numpy(), tuple(latent["samples"].shape[-2:]))
        exemplar = chain[0]
        graft_keep = to_latent_map(1.0 - exemplar.strength, tuple(latent["samples"].shape[-2:]))
        surgery = Surgery(source=process(self.latent["samples"]), source_noise=noise, keep=keep,
                          graft=process(exemplar.latent), graft_noise=noise, graft_mask=~(graft_keep > 0))

        def pixels_loop(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
            adapter = SigmaAdapter(model_k, extra_args or {})
            stage = Stage(adapter, EulerSigmas(sigmas), sigmas[:-1], None, NoGuidance(), {})
            return denoise([stage], surgery)[0]
        out = comfy.sample.sample_custom(self.model, noise, 4.0, comfy.samplers.KSAMPLER(pixels_loop), sigmas,
                                         self.positive, self.negative, latent["samples"], seed=SEED)
        dump["loop_pixels"] = out
        dump["loop_noise"] = noise

    def regional_text(self, dump: dict) -> None:
        """Regional prompts in ComfyUI: ComfyUI's own masked conditioning (ConditioningSetMask, combined) sampled
        through the PIXELS-patched model, with the left region's text as given and changed."""
        nodes, strength = self.nodes, self.mask("binary")
        left = torch_mask(0, 32)
        right = torch_mask(32, 64)

        def regional(left_text: str):
            conds = [nodes.ConditioningSetMask().append(nodes.CLIPTextEncode().encode(self.clip, text)[0], m, "default",
                                                        1.0)[0] for text, m in ((left_text, left), ("a blue cube", right))]
            return nodes.ConditioningCombine().combine(*conds)[0]

        patched, latent, _ = self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                      release="reference", strength=strength, exemplars=None)
        for name, text in (("red", "a red ball"), ("green", "a green tree")):
            dump[f"regional_{name}"] = self.nodes.common_ksampler(patched, SEED, 6, 4.0, "euler", "normal",
                                                                  regional(text), self.negative, latent,
                                                                  denoise=0.7)[0]["samples"]
        dump["regional_strength"] = strength

    def regional_lora(self, dump: dict, report: dict) -> None:
        """PIXELS Regional LoRA against ComfyUI's own LoRA loader and the model alone; two LoRAs in two regions."""
        import folder_paths
        import nodes
        import torch

        folder = Path(self.job["input_dir"]).parent / "loras"
        folder.mkdir(exist_ok=True)
        folder_paths.add_model_folder_path("loras", str(folder))
        for seed in (1, 2, 3):
            write_tiny_lora(self.model, folder / f"tiny_{seed}.safetensors", seed)
        write_tiny_lora(self.model, folder / "text_only.safetensors", 4, text_only=True)
        white, black = torch.ones(1, 64, 64), torch.zeros(1, 64, 64)
        left, right = torch_mask(0, 32), torch_mask(32, 64)

        def regional(*pairs):
            model = self.model
            for name, strength, mask in pairs:
                model = self.run("PixelsRegionalLoRA", model=model, lora_name=name, strength=strength,
                                 region=mask)[0]
            return model

        decode = lambda samples: self.vae.decode(samples)  # noqa: E731
        dump["rlora_plain"] = self.sample(self.model, self.latent)
        dump["rlora_white"] = self.sample(regional(("tiny_1.safetensors", 0.8, white)), self.latent)
        comfy_lora = nodes.LoraLoaderModelOnly().load_lora_model_only(self.model, "tiny_1.safetensors", 0.8)[0]
        dump["rlora_comfyui"] = self.sample(comfy_lora, self.latent)
        dump["rlora_white_pixels"] = decode(dump["rlora_white"])
        dump["rlora_comfyui_pixels"] = decode(dump["rlora_comfyui"])
        dump["rlora_black"] = self.sample(regional(("tiny_1.safetensors", 0.8, black)), self.latent)
        dump["rlora_left"] = self.sample(regional(("tiny_1.safetensors", 1.0, left)), self.latent)
        dump["rlora_two"] = self.sample(regional(("tiny_1.safetensors", 1.0, left), ("tiny_2.safetensors", 1.0, right)),
                                        self.latent)
        dump["rlora_two_changed"] = self.sample(regional(("tiny_1.safetensors", 1.0, left),
                                                         ("tiny_3.safetensors", 1.0, right)), self.latent)
        import comfy.patcher_extension

        for key, model in (("plain", self.model), ("left", regional(("tiny_1.safetensors", 1.0, left)))):
            recorded = model.clone()

            def record(executor, *args, key=key, **kwargs):  # inside the regional wrapper: its hooks run first
                layer = executor.class_obj.input_blocks[1][0].in_layers[2]
                handle = layer.register_forward_hook(
                    lambda m, a, out: dump.setdefault(f"rlora_layer_{key}", out.detach().clone()))
                try:
                    return executor(*args, **kwargs)
                finally:
                    handle.remove()
            recorded.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "pixels_test", record)
            self.sample(recorded, self.latent, steps=1)
        calls = {"plain": 0, "regional": 0}
        for key, model in (("plain", self.model), ("regional", regional(("tiny_1.safetensors", 1.0, left),
                                                                        ("tiny_2.safetensors", 1.0, right)))):
            counted = model.clone()

            def count(apply, args, key=key):
                calls[key] += 1
                return apply(args["input"], args["timestep"], **args["c"])
            counted.set_model_unet_function_wrapper(count)
            self.sample(counted, self.latent)
        report["rlora_calls"] = calls
        other_family = self.model.clone()  # a model whose diffusion model is not a UNet (a stand-in for DiT ones)
        other_family.add_object_patch("diffusion_model", torch.nn.Linear(4, 4))
        replaced = regional(("tiny_1.safetensors", 1.0, left)).clone()  # a later node's own cross-attention
        replaced.set_model_attn2_replace(lambda q, k, v, extra: q, "input", 1, 0)
        self.more_errors = {
            "rlora_replaced": lambda: self.sample(replaced, self.latent),
            "rlora_size": lambda: self.sample(regional(("tiny_1.safetensors", 1.0, torch.ones(1, 40, 64))),
                                              self.latent),
            "rlora_strength": lambda: regional(("tiny_1.safetensors", 9.0, white)),
            "rlora_text_only": lambda: regional(("text_only.safetensors", 1.0, white)),
            "rlora_family": lambda: self.run("PixelsRegionalLoRA", model=other_family, lora_name="tiny_1.safetensors",
                                             strength=1.0, region=white),
        }

    def errors(self) -> dict[str, str]:
        """The message each bad input gives (the node's exception, as ComfyUI shows it)."""
        import torch

        cases = {
            "box_outside": lambda: self.place("box", (900, 900, 16, 16)),
            "exemplar_larger_auto": lambda: self.place("auto", (0, 0, 1, 1), image=torch.rand(1, 96, 128, 3)),
            "region_empty": lambda: self.place("auto", (0, 0, 1, 1), region=torch.zeros(1, 64, 64)),
            "source_not_multiple": lambda: self.run(
                "PixelsExemplar", image=self.exemplar, source=torch.rand(1, 60, 64, 3), vae=self.vae, placement="box",
                x=0, y=0, width=8, height=8, fit="cover"),
            "strength_size": lambda: self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                              release="reference", strength=torch.ones(1, 40, 64)),
            "strength_empty": lambda: self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                               release="reference", strength=torch.zeros(1, 64, 64)),
            "strength_range": lambda: self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                               release="reference", strength=torch.full((1, 64, 64), 2.0)),
            "nothing": lambda: self.run("PixelsSurgery", model=self.model, latent=self.latent, mode="paper",
                                        release="reference"),
            "paste_sizes": lambda: self.run("PixelsPasteBack", image=torch.rand(1, 64, 64, 3),
                                            source=torch.rand(1, 32, 64, 3), strength=torch.ones(1, 64, 64)),
            "radial": lambda: self.run("PixelsMapRadial", width=64, height=64, center_x=3.0, center_y=3.0,
                                       inner=20.0, outer=10.0),
            "combine_sizes": lambda: self.run("PixelsMapCombine", a=torch.ones(1, 8, 8), b=torch.ones(1, 9, 8),
                                              how="max"),
            "select_points": lambda: self.run("PixelsSelect", image=self.source, points="1,2,3", negative="", boxes="",
                                              text="", pick="best", depth="", direction="far", grow=0, shrink=0,
                                              feather=0.0, invert=False),
        }
        messages = {}
        for name, case in {**cases, **self.more_errors}.items():
            try:
                case()
                messages[name] = None
            except Exception as error:  # what ComfyUI would show
                messages[name] = f"{type(error).__name__}: {error}"
        return messages


class SigmaAdapter:
    """The slice of a pixels adapter that `pixels.core.loop.denoise` uses, over ComfyUI's denoiser: latents are
    noised as ComfyUI's EPS models noise them (noise * sigma + latent), and the model predicts the clean latent."""

    inpaint = False
    family = "comfyui"

    def __init__(self, model_k, extra_args: dict) -> None:
        self.model_k, self.extra_args = model_k, extra_args

    def add_noise(self, scheduler, latents, noise, t):
        return noise * t + latents

    def scale_model_input(self, scheduler, latents, t):
        return latents

    def predict(self, latents, t, cond):
        return self.model_k(latents, t * latents.new_ones([latents.shape[0]]), **self.extra_args)


class EulerSigmas:
    """Euler steps over ComfyUI's sigmas, written as ComfyUI's sample_euler writes them."""

    def __init__(self, sigmas) -> None:
        self.sigmas = sigmas
        self.index = 0

    def step(self, denoised, t, latents, return_dict=False):
        sigma, following = self.sigmas[self.index], self.sigmas[self.index + 1]
        self.index += 1
        d = (latents - denoised) / sigma
        return (latents + d * (following - sigma),)


class NoGuidance:
    """Guidance is ComfyUI's own (inside its sampler wrapper): one latent in, one prediction out."""

    def expand(self, latents):
        return latents

    def combine(self, prediction):
        return prediction


def write_tiny_lora(model, path: Path, seed: int, text_only: bool = False) -> None:
    """A random rank-4 LoRA in the kohya format on the tiny UNet's attention projections (self and cross, keys and
    values included), feed-forwards, transformer proj_in/out, resblock convolutions and time-embedding projections;
    `text_only`: one on the text encoder alone."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    if text_only:
        tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.randn(4, 32, generator=generator)
        tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = torch.randn(64, 4, generator=generator)
        save_file(tensors, str(path))
        return
    targets = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out",
               "in_layers.2", "out_layers.3", "emb_layers.1")
    for key, weight in model.model.diffusion_model.state_dict().items():
        module = key[:-len(".weight")]
        if not key.endswith(".weight") or weight.ndim < 2 or not module.endswith(targets):
            continue
        name = "lora_unet_" + module.replace(".", "_")
        rank = 4
        down = torch.randn(rank, *weight.shape[1:], generator=generator) / weight[0].numel() ** 0.5
        up = torch.randn(weight.shape[0], rank, *([1] * (weight.ndim - 2)), generator=generator) * 0.05
        tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"] = down, up
        tensors[f"{name}.alpha"] = torch.tensor(2.0)
    save_file(tensors, str(path))


def torch_mask(x0: int, x1: int):
    """A 64x64 MASK, 1 in the columns [x0, x1)."""
    import torch

    mask = torch.zeros(1, 64, 64)
    mask[:, :, x0:x1] = 1.0
    return mask


def torch_image(picture):
    import torch

    return torch.from_numpy(np.asarray(picture.convert("RGB"), np.float32) / 255.0)[None]


if __name__ == "__main__":
    if sys.argv[1] == "--ui-graph":
        write_editor_graph(sys.argv[2])
    else:
        main(sys.argv[1])
