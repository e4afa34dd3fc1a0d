"""The studio's page: a gr.Blocks layout whose events call the plain functions of `handlers`.

Model work (edits, replaying a loaded session, the API's "edit") runs in Gradio's queue with one
concurrency group of limit 1, so one edit runs at a time and the others wait, their place shown;
everything else (painting tools, previews, undo) goes through the queue too, so that its errors reach the
page as messages, but never waits for the model. An action that fails shows its message and changes
nothing on the page (`act`); a refused upload is cleared from its box.
"""

from __future__ import annotations

import functools
import html
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pixels import InputError, PixelsError

from . import canvas as cv
from . import handlers as h
from . import selecting
from .api import api_edit
from .board import Board
from .browse import step_view
from .context import Context
from .exemplars import FITS, MAX_SLOTS, PLACEMENTS, REGIONS, Slot, check_box, default_box, moved_box
from .painting import schedule_steps
from .photos import catalogue
from .settings import MAIN, ORDER, TEXT, Field
from .state import REGION_TARGETS, TARGETS

log = logging.getLogger("pixels.app")
DEVICE = "device"  # the concurrency group of everything that runs the model
TARGET_LABELS = {"strength": "Strength map", **{f"exemplar {k}": f"Exemplar {k}'s own map" for k in range(1, 5)},
                 **{t: f"Region {t.split()[-1]} (its own prompt)" for t in REGION_TARGETS}}
DISABLE_RUN = "() => { const run = document.querySelector('#pixels-run'); if (run) run.disabled = true; }"
CSS = """
.pixels-legend { font-size: 0.9em; opacity: 0.85; }
#pixels-status [data-testid="status-tracker"] { font-size: 1rem; }
"""


def guarded(fn: Callable, *, escape: bool = True) -> Callable:
    """Show errors as messages, never as tracebacks: pixels' errors (whose text names the field) as they
    are, anything unexpected as one line; for the page the text is escaped (it may quote a file name), for
    the API endpoint (`escape=False`) a script gets it as plain text."""
    quote = html.escape if escape else str
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except PixelsError as error:
            raise gr.Error(quote(str(error)), title="Cannot do that", print_exception=False) from None
        except Exception as error:  # a web page shows one line; the log keeps the traceback
            log.exception("unexpected error in %s", getattr(fn, "__name__", "handler"))
            raise gr.Error(quote(f"internal error: {type(error).__name__}: {str(error)[:200]}"),
                           print_exception=False) from None
    return wrapper


def ImageUpload(**kwargs: Any) -> gr.Image:  # noqa: N802 - used as the component it makes
    """A `gr.Image` upload (`type="filepath"`) whose file reaches pixels' own reader unopened: a file that is not
    an image, or is too large, is refused by pixels with a message naming the field and the limit, instead of
    failing inside Gradio before any handler runs. (An instance's `preprocess`, not a subclass: Gradio writes a
    `.pyi` file beside the source of every component class.)"""
    box = gr.Image(**kwargs)
    plain = box.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is None or getattr(payload, "path", None) is None or str(payload.url or "").startswith("data:"):
            return plain(payload)  # nothing uploaded, or a pasted image sent inline
        return str(payload.path)

    box.preprocess = preprocess
    return box


def cleared() -> None:
    """The value of a box whose upload was refused: empty (the message says why)."""
    return None


@dataclass
class SlotUI:
    """The components of one exemplar tab."""

    image: gr.Image
    preview: gr.Image
    placement: gr.Radio
    x: gr.Number
    y: gr.Number
    w: gr.Number
    h: gr.Number
    fit: gr.Radio
    region: gr.Radio
    condition: gr.Number
    cutout: gr.Textbox
    prompt: gr.Textbox
    negative: gr.Textbox
    loras: gr.Textbox
    remove: gr.Button
    up: gr.Button
    down: gr.Button

    @property
    def fields(self) -> list:
        """The values that make a `Slot`, in its order (image, placement, x, y, w, h, fit, region, condition,
        cutout, prompt, negative, loras)."""
        return [self.image, self.placement, self.x, self.y, self.w, self.h, self.fit, self.region, self.condition,
                self.cutout, self.prompt, self.negative, self.loras]


def slots_from(values: list) -> list[Slot]:
    """`Slot`s from the flat list of every tab's field values."""
    width = 13
    return [Slot(v[0], v[1], (v[2], v[3], v[4], v[5]), v[6], v[7], v[8], v[9] or "", v[10] or "", v[11] or "",
                 v[12] or "") for v in (values[k:k + width] for k in range(0, len(values), width))]


def _empty_slot() -> list:
    return [None, "auto", 0, 0, 0, 0, "cover", "strength map", 0.0, "", "", "", ""]


def _download(path: Any) -> dict:
    return gr.update(value=str(path) if path else None, interactive=path is not None)


def render(view: h.View) -> list:
    """A `View` as updates of VIEW outputs (see `build`)."""
    result = view.result
    return [
        gr.skip() if view.canvas is None else view.canvas,
        view.gallery,
        None if result is None else (result.before, result.after),
        None if result is None else result.before,
        None if result is None else result.after,
        "" if result is None else result.report,
        None if result is None else result.seed,
        _download(None if result is None else result.png),
        _download(None if result is None else result.map_png),
        _download(view.current_png),
        gr.update(interactive=view.can_continue),
        view.status,
        gr.update(value=view.variations or None, visible=bool(view.variations)),
    ]


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "the time is known once the model has run a few steps"
    return f"about {max(1, round(seconds))} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def queue_text(where: tuple[str, int, float | None] | None) -> str:
    """The queue line: where this tab's edit stands (`Engine.place`)."""
    if where is None:
        return ""
    kind, count, seconds = where
    if kind == "running":
        return f"**Running:** {count} step{'s' * (count != 1)} left, {_seconds(seconds)}."
    if count == 0:
        return "**Next:** your edit starts in a moment."
    return (f"**In the queue:** {count} edit{'s' * (count != 1)} ahead of yours; it starts in"
            f" {_seconds(seconds)}.")


def recommended_line(defaults: dict[str, Any]) -> str:
    """The model's recommended schedule in words, for the page's header."""
    text = f"{defaults['steps']} steps, strength {defaults['strength']:g}"
    guidance = defaults.get("guidance")
    if isinstance(guidance, (int, float)):
        text += ", no guidance" if guidance <= 1 else f", guidance {guidance:g}"
    return text


def setting_component(field: Field, value: Any, takes_prompt: bool, maximum: float | None = None) -> Any:
    """The field of one setting, as its declaration describes it (`Field.widget`), at most `maximum` where
    the server says less than the declaration; its element id is `pixels-<spec key>`."""
    common: dict[str, Any] = {"label": field.label, "info": field.option.help, "elem_id": f"pixels-{field.key}"}
    if field.key in TEXT and not takes_prompt:
        common |= {"label": f"{field.label} (not used by this model)", "interactive": False}
    widget, (low, high) = field.widget, field.option.bounds or (None, None)
    high = high if maximum is None else maximum
    if widget == "checkbox":
        return gr.Checkbox(value=value, **common)
    if widget == "radio":
        return gr.Radio(list(field.option.choices), value=value, **common)
    if widget == "dropdown":
        return gr.Dropdown(list(field.option.listed), value=value, **common)
    if widget == "slider":
        return gr.Slider(low, high, value=value, step=0.01, **common)
    if widget in ("integer", "number"):
        # the bounds are said, not set: Gradio's own check of a number field's bounds does not name the field,
        # and pixels' does ("steps: this server runs at most 250 steps per edit, got 100000")
        if maximum is not None:
            common["info"] = f"{common['info'] or ''} (this server: at most {maximum:g})".strip()
        elif low is not None and high is not None:
            common["info"] = f"{common['info'] or ''} (in [{low:g}, {high:g}])".strip()
        return gr.Number(value=value, precision=0 if widget == "integer" else None, **common)
    return gr.Textbox(value=value, lines=2 if field.key == "prompt" else 1, **common)


def build(ctx: Context) -> gr.Blocks:
    """The studio for `ctx`'s model."""
    engine = ctx.engine
    defaults = engine.defaults
    samples = list(catalogue())
    regional_loras = engine.takes_regional_lora and bool(engine.loras)  # a region can scale the loaded LoRAs
    lora_hint = ", ".join(f"{name}:{max(scale, 0.0) or 1:g}" for name, _, scale in engine.loras[:2]) or "style:0.8"

    def close_state(value: Any) -> None:
        if value is not None:
            value.close()

    with gr.Blocks(title="pixels studio", analytics_enabled=False, delete_cache=(600, 3600),
                   fill_width=True) as demo:
        state = gr.State(None, delete_callback=close_state)
        run_id = gr.State(None)
        gr.Markdown(
            f"## pixels studio\nModel **{html.escape(engine.model)}** ({engine.family or 'unknown'} family);"
            f" its recommended settings, where the fields start: {recommended_line(defaults)}."
            " Paint a strength map on the photo (**white = full edit, black = keep**, gray = partial), add"
            " exemplars to graft where their map is white, and run. Pixels you do not paint stay identical.",
            elem_id="pixels-header",
        )
        with gr.Row(equal_height=False, elem_id="pixels-workspace"):
            with gr.Column(scale=1, min_width=280):
                gr.Markdown("### 1 · Photo")
                source = ImageUpload(label="Upload or paste a photo", type="filepath", image_mode=None,
                                     sources=["upload", "clipboard"], height=160, elem_id="pixels-source")
                sample = gr.Dropdown(samples, value=samples[0], label="or a sample photo", elem_id="pixels-sample")
                use_sample = gr.Button("Use sample", elem_id="pixels-use-sample")
                current = gr.DownloadButton("Download the current image", interactive=False,
                                            elem_id="pixels-download-current")
                gr.Markdown("### 2 · Paint where to edit")
                target = gr.Radio([(TARGET_LABELS[t], t) for t in TARGETS
                                   if engine.takes_regional_text or t not in REGION_TARGETS],
                                  value="strength", label="Paint on", elem_id="pixels-target")
                softness = gr.Slider(0, 64, value=0, step=1, label="Softness (px): edges fade in, inside the"
                                     " painted area only")
                with gr.Row():
                    invert = gr.Button("Invert", size="sm", elem_id="pixels-invert")
                    clear = gr.Button("Clear", size="sm", elem_id="pixels-clear")
                with gr.Accordion("Map tools: shapes, gradients, feather, load a map", open=False):
                    shape = gr.Radio(list(cv.SHAPES), value="box", label="Shape")
                    how = gr.Radio(list(cv.COMBINE), value="add", label="Combine with the map")
                    labels = cv.SHAPE_FIELDS["box"]
                    with gr.Row():
                        numbers = [gr.Number(label=labels[k], value=0, min_width=60) for k in range(4)]
                    percent = gr.Slider(0, 100, value=100, step=1, label="Strength %")
                    apply_shape = gr.Button("Apply shape", variant="secondary", elem_id="pixels-apply-shape")
                    with gr.Row():
                        radius = gr.Number(label="Feather radius (px)", value=8, min_width=80)
                        feather = gr.Button("Feather the map")
                    map_file = gr.File(label="Load a map image (white = edit), combined as above",
                                       file_types=["image"], type="filepath")
                with gr.Accordion("Select: by click, box, phrase or depth", open=False, elem_id="pixels-select"):
                    gr.Markdown("With the canvas's **Select** tool (S), click on an object (Alt+click: what to leave"
                                " out) or drag a box; or type a phrase, or a depth range (0 nearest, 1 farthest)."
                                " The selection is combined into the map being painted, as above.")
                    pick_clicks = gr.Textbox(label="Clicks (x,y; -x,y leaves out)", elem_id="pixels-select-clicks")
                    pick_boxes = gr.Textbox(label="Boxes (x,y,w,h; ...)", elem_id="pixels-select-boxes")
                    pick_text = gr.Textbox(label="Phrase", placeholder="the sofa", elem_id="pixels-select-text")
                    pick_depth = gr.Textbox(label="Depth range near:far", placeholder="0.4:1",
                                            elem_id="pixels-select-depth")
                    with gr.Row():
                        pick_grow = gr.Number(0, label="Grow (px)", precision=0, min_width=80)
                        pick_feather = gr.Number(0, label="Feather (px)", min_width=80)
                    pick_model = gr.Textbox(label="Model (a short name from pixels models, a hub id or a folder;"
                                                  " empty: the default)", elem_id="pixels-select-model")
                    with gr.Row():
                        pick_run = gr.Button("Select", variant="secondary", elem_id="pixels-select-run")
                        pick_clear = gr.Button("Clear clicks", size="sm", elem_id="pixels-select-clear")
            with gr.Column(scale=3, min_width=520):
                canvas = Board(elem_id="pixels-canvas")
            with gr.Column(scale=2, min_width=360):
                with gr.Row(equal_height=True):
                    run = gr.Button("Run", variant="primary", scale=3, elem_id="pixels-run")
                    stop = gr.Button("Cancel", variant="stop", scale=1, elem_id="pixels-cancel")
                    variations = gr.Number(1, label=f"Variations (1-{h.MAX_VARIATIONS} seeds)", precision=0,
                                           min_width=90, scale=1, elem_id="pixels-variations")
                status = gr.Markdown("Choose a photo to start.", elem_id="pixels-status")
                queue_line = gr.Markdown("", elem_id="pixels-queue")
                ticker = gr.Timer(1.0, active=False)
                with gr.Tabs():
                    with gr.Tab("Before / after"):
                        slider = gr.ImageSlider(label="Drag to compare (left: before, right: after)", type="pil",
                                                format="png", interactive=False, elem_id="pixels-slider")
                    with gr.Tab("Side by side"), gr.Row():
                        before = gr.Image(label="Before", interactive=False, type="pil", format="png")
                        after = gr.Image(label="After", interactive=False, type="pil", format="png")
                variation_grid = gr.Gallery(label="Variations: click one to show it (and continue from it)",
                                            columns=4, height=180, object_fit="contain", format="png",
                                            interactive=False, visible=False, elem_id="pixels-variations-grid")
                with gr.Row():
                    seed_used = gr.Number(None, label="Seed used", interactive=False, precision=0, min_width=100)
                    reuse = gr.Button("Reuse this seed", size="sm")
                with gr.Row():
                    proceed = gr.Button("Continue from here", interactive=False, elem_id="pixels-continue")
                    undo = gr.Button("Undo", elem_id="pixels-undo")
                    redo = gr.Button("Redo", elem_id="pixels-redo")
                gallery = gr.Gallery(label="History: every step in the order made; click one to show it", columns=5, fit_columns=False, height=170,
                                     object_fit="contain", format="png", interactive=False, elem_id="pixels-history")
                with gr.Row():
                    download = gr.DownloadButton("Download result PNG", interactive=False,
                                                 elem_id="pixels-download-result")
                    download_map = gr.DownloadButton("Download its map", interactive=False,
                                                     elem_id="pixels-download-map")
                report = gr.Markdown("", elem_id="pixels-report")

        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=420):
                gr.Markdown("### 3 · Exemplars (grafted where their region is white)")
                slot_uis: list[SlotUI] = []
                with gr.Tabs():
                    for k in range(MAX_SLOTS):
                        with gr.Tab(f"Exemplar {k + 1}"):
                            with gr.Row():
                                image = ImageUpload(label="Exemplar image", type="filepath", image_mode=None,
                                                 sources=["upload", "clipboard"], height=180,
                                                 elem_id=f"pixels-exemplar-{k + 1}")
                                preview = gr.Image(label="Where it goes (click to move its box)", interactive=False,
                                                   type="pil", format="png", height=180)
                            with gr.Row():
                                placement = gr.Radio(list(PLACEMENTS), value="auto", label="Placement",
                                                     elem_id=f"pixels-exemplar-{k + 1}-placement",
                                                     info="auto: aligned if it has the photo's size, else fitted"
                                                          " into its region")
                                fit = gr.Radio(list(FITS), value="cover", label="Fit into the box")
                            with gr.Row():
                                boxes = [gr.Number(label=n, value=0, precision=0, min_width=60, interactive=False,
                                                   elem_id=f"pixels-exemplar-{k + 1}-{n}") for n in "xywh"]
                            region = gr.Radio(list(REGIONS), value="strength map", label="Region (where it is"
                                              " grafted)", info="strength map: where the strength map is white;"
                                              f" own map: paint on 'Exemplar {k + 1}'s own map'")
                            condition = gr.Number(0.0, step=0.1, visible=engine.takes_conditions,
                                                  label="Condition (IP-Adapter weight of its region's image prompt,"
                                                        " in [0, 5]; 0: none)", elem_id=f"pixels-exemplar-{k + 1}-condition")
                            cutout = gr.Textbox("", label="Cut out (what to take from the picture)", max_lines=1,
                                                placeholder="the lamp   or   {boxes: [[0, 0, 120, 90]], grow: 2}",
                                                info="found on the exemplar image by the selection models; empty:"
                                                     " the whole picture", elem_id=f"pixels-exemplar-{k + 1}-cutout")
                            with gr.Row(visible=engine.takes_regional_text):
                                here = gr.Textbox("", label="Prompt here (its region's own text)", max_lines=2,
                                                  placeholder="empty: the edit's prompt",
                                                  elem_id=f"pixels-exemplar-{k + 1}-prompt")
                                not_here = gr.Textbox("", label="Negative prompt here", max_lines=2,
                                                      placeholder="empty: the edit's negative prompt",
                                                      elem_id=f"pixels-exemplar-{k + 1}-negative")
                            loras_here = gr.Textbox("", label="LoRAs here (name:scale, comma-separated)", max_lines=1,
                                                    placeholder=lora_hint, visible=regional_loras,
                                                    elem_id=f"pixels-exemplar-{k + 1}-loras")
                            with gr.Row():
                                remove = gr.Button("Remove", size="sm")
                                up = gr.Button("Move left", size="sm", interactive=k > 0)
                                down = gr.Button("Move right", size="sm", interactive=k < MAX_SLOTS - 1)
                            slot_uis.append(SlotUI(image, preview, placement, *boxes, fit, region, condition, cutout,
                                                   here, not_here, loras_here, remove, up, down))
            with gr.Column(scale=1, min_width=420):
                gr.Markdown("### 4 · Settings" + ("" if engine.takes_prompt else
                                                   " (this model is unconditional: it takes no prompt)"))
                settings: dict[str, Any] = {}
                for f in ORDER[:len(MAIN)]:
                    settings[f.key] = setting_component(f, defaults[f.key], engine.takes_prompt,
                                                        engine.max_steps if f.key == "steps" else None)
                    if f.key == "seed":
                        dice = gr.Button("Random seed", size="sm")
                with gr.Accordion("Regions: their own prompt" + (" and LoRAs" if regional_loras else ""), open=False,
                                  elem_id="pixels-regions", visible=engine.takes_regional_text):
                    gr.Markdown("Paint a region on **Region k** (under *Paint on*) and give it a prompt"
                                + (" or LoRA scales" if regional_loras else "") + ": the model attends to it only"
                                " there, and to the edit's prompt elsewhere. Its map is edited too.")
                    region_fields = []
                    for k in range(1, len(REGION_TARGETS) + 1):
                        with gr.Row():
                            region_fields.append(gr.Textbox("", label=f"Region {k}: prompt", max_lines=2,
                                                            elem_id=f"pixels-region-{k}-prompt"))
                            region_fields.append(gr.Textbox("", label=f"Region {k}: negative prompt", max_lines=2,
                                                            placeholder="empty: the edit's",
                                                            elem_id=f"pixels-region-{k}-negative"))
                        region_fields.append(gr.Textbox("", label=f"Region {k}: LoRAs here", max_lines=1,
                                                        placeholder=lora_hint, visible=regional_loras,
                                                        elem_id=f"pixels-region-{k}-loras"))
                with gr.Accordion("Advanced", open=False, elem_id="pixels-advanced"):
                    for f in ORDER[len(MAIN):]:
                        settings[f.key] = setting_component(f, defaults[f.key], engine.takes_prompt)
                with gr.Accordion("Prompt image, ControlNet and LoRA", open=True, elem_id="pixels-extensions",
                                  visible=engine.takes_prompt_images or engine.takes_control or bool(engine.loras)):
                    if engine.loras:
                        gr.Markdown("LoRAs loaded for every edit: " + ", ".join(
                            f"`{html.escape(name)}` ({html.escape(source)}) at {scale:g}"
                            for name, source, scale in engine.loras)
                            + (". A region's or an exemplar's *LoRAs here* field scales them by name inside its map"
                               " (`style:0.8, other`)." if regional_loras else ""))
                    with gr.Row(visible=engine.takes_prompt_images):
                        prompt_image = ImageUpload(label="Prompt image (mixed into the prompt)", type="filepath",
                                                image_mode=None, height=140, elem_id="pixels-prompt-image")
                        prompt_weight = gr.Number(1.0, label="Its weight, in (0, 100]")
                    with gr.Group(visible=engine.takes_control):
                        control = gr.Radio(["off", "canny", "image"], value="off", label="ControlNet control",
                                           info="canny: the photo's edges; image: a control image you give",
                                           elem_id="pixels-control")
                        control_image = ImageUpload(label="Control image", type="filepath", image_mode=None,
                                                    height=140)
                        with gr.Row():
                            control_scale = gr.Slider(0, 10, value=1.0, step=0.05, label="Control scale")
                            control_start = gr.Slider(0, 1, value=0.0, step=0.05, label="Starts at")
                            control_end = gr.Slider(0, 1, value=1.0, step=0.05, label="Ends at")
                png_settings = gr.File(label="Drop a PNG made by pixels here to restore its settings",
                                       file_types=[".png"], type="filepath", height=100, elem_id="pixels-png-settings")
        settings_fields = [settings[f.key] for f in ORDER]
        extension_fields = [prompt_image, prompt_weight, control, control_image, control_scale, control_start,
                            control_end]
        seed, steps, strength = settings["seed"], settings["steps"], settings["strength"]

        with gr.Accordion("Map preview and release schedule", open=False):
            with gr.Row():
                overlay = gr.Image(label="The map on the photo (red = edited, stronger = redder)", interactive=False,
                                   type="pil", format="png", elem_id="pixels-overlay")
                release = gr.Image(label="Release schedule: pixels the model may change (green) at 25, 50 and"
                                   " 75 % of the steps", interactive=False, type="pil", format="png")
        summary = gr.Markdown("", elem_id="pixels-map-summary")
        with gr.Row():
            save = gr.Button("Save the session (.zip)", scale=1, elem_id="pixels-save-session")
            saved = gr.File(label="Saved session", interactive=False, scale=2, elem_id="pixels-saved-session")
            load = gr.File(label="Load a saved session (.zip): replayed, bit for bit", file_types=[".zip"],
                           elem_id="pixels-load-session",
                           type="filepath", scale=2)

        # The hidden API endpoint for scripts: gradio_client.Client(url).predict(..., api_name="/edit")
        with gr.Row(visible=False):
            api_source = ImageUpload(type="filepath", image_mode=None, label="source")
            api_map = ImageUpload(type="filepath", image_mode=None, label="map")
            api_settings = gr.Textbox(label="settings (JSON)")
            api_result = gr.File(label="result")
            api_info = gr.JSON(label="summary")
            api_button = gr.Button("edit")

        view_outputs = [canvas, gallery, slider, before, after, report, seed_used, download, download_map, current,
                        proceed, status, variation_grid]
        slot_fields = [f for s in slot_uis for f in s.fields]
        private = {"api_visibility": "private"}
        # instant events: through the queue (so that their errors reach the page as messages) but never waiting
        # for the model, and with no progress or error overlay on their outputs (the message says what failed)
        instant = {"queue": True, "concurrency_limit": None, "show_progress": "hidden", **private}

        def act(listener: Callable, fn: Callable, inputs: Any, outputs: Any, **extra: Any) -> tuple[Any, Any]:
            """`listener(fn, inputs, outputs)` in two steps, so that an error shows its message and leaves every
            component as it was (a failed event marks its outputs with an error badge): `fn` runs with a hidden
            state as its only output, then its values go to `outputs`. Returns both steps: the first for
            `.failure`, the second for `.then`."""
            stash = gr.State()
            first = listener(guarded(fn), inputs, stash, **{**instant, **extra})
            return first, first.success(lambda values: values, stash, outputs, **instant)

        # -- sessions --------------------------------------------------------------------------------
        def opened(request: gr.Request) -> Any:
            return ctx.sessions.open(request.session_hash)

        def closed(request: gr.Request) -> None:
            ctx.sessions.close(request.session_hash)

        demo.load(opened, None, state, **{**instant, "queue": False})  # a full queue must not break the page
        demo.unload(closed)

        # -- previews ----------------------------------------------------------------------------------
        def previews(st: Any, c: Any, soft: float, n: Any, s: Any, *values: Any) -> list:
            slots = slots_from(list(values))
            shown, placed = cv.previews(ctx, st, c, soft, slots, n, s)
            if st is None or st.history is None:
                return [shown.overlay, shown.release, shown.summary, *placed, gr.skip(), *[gr.skip()] * 4 * len(slots)]
            # with placement "auto" the box fields show the box the edit will use (and start from it on "box")
            used = {b["slot"]: b["box"] for b in st.boxes}
            fields = []
            for k, slot in enumerate(slots, 1):
                auto = slot.placement != "box" and k in used and list(slot.box) != used[k]
                fields += used[k] if auto else [gr.skip()] * 4
            return [shown.overlay, shown.release, shown.summary, *placed, cv.boxes_value(st), *fields]

        def map_previews(st: Any, soft: float, n: Any, s: Any, *values: Any) -> list:
            return previews(st, None, soft, n, s, *values)  # just after the canvas was replaced: no strokes

        preview_outputs = [overlay, release, summary, *(s.preview for s in slot_uis), canvas,
                           *(f for s in slot_uis for f in (s.x, s.y, s.w, s.h))]
        preview_triggers = [canvas.input, softness.release, steps.change, strength.release]
        preview_triggers += [e for s in slot_uis for e in (s.image.change, s.placement.change, s.fit.change,
                                                           s.region.change, s.x.change, s.y.change, s.w.change,
                                                           s.h.change)]
        gr.on(preview_triggers, guarded(previews), [state, canvas, softness, steps, strength, *slot_fields],
              preview_outputs, trigger_mode="always_last", **instant)
        # A canvas replaced by the server (new photo, tools, undo...) does not report a change: refresh after it
        refresh = {"fn": guarded(map_previews), "inputs": [state, softness, steps, strength, *slot_fields],
                   "outputs": preview_outputs, "show_progress": "hidden", **instant}

        def shape_fields(st: Any, kind: str) -> list:
            size = None if st is None or st.history is None else st.history.source.image.size
            values = cv.shape_defaults(kind, size)
            return [gr.update(label=label, value=value) for label, value in zip(cv.SHAPE_FIELDS[kind], values)]

        # a new photo: the map tools' fields start from its size
        shape_refresh = {"fn": guarded(shape_fields), "inputs": [state, shape], "outputs": numbers, **instant}

        # -- photo ----------------------------------------------------------------------------------
        def photo(st: Any, path: str | None) -> list:
            if path is None:
                return [gr.skip()] * len(view_outputs)
            return render(h.use_photo(ctx, st, path, name=path.rsplit("/", 1)[-1]))

        uploaded, shown = act(source.upload, photo, [state, source], view_outputs)
        shown.then(**refresh).then(**shape_refresh)
        uploaded.failure(cleared, None, source, **instant)  # a refused photo leaves its box; the edited one stays
        act(use_sample.click, lambda st, name: render(h.use_sample(ctx, st, name)), [state, sample],
            view_outputs)[1].then(**refresh).then(**shape_refresh)

        # -- painting -------------------------------------------------------------------------------
        act(target.change, cv.switch_target, [state, canvas, target], canvas)[1].then(**refresh)
        act(invert.click, cv.invert_map, [state, canvas], canvas)[1].then(**refresh)
        act(clear.click, cv.clear_map, [state], canvas)[1].then(**refresh)
        act(feather.click, cv.feather_map, [state, canvas, radius], canvas)[1].then(**refresh)

        shape.change(guarded(shape_fields), [state, shape], numbers, **instant)
        act(apply_shape.click, lambda st, c, kind, a, b, cc, d, p, mode_: cv.apply_shape(st, c, kind, (a, b, cc, d),
                                                                                       p, mode_),
            [state, canvas, shape, *numbers, percent, how], canvas)[1].then(**refresh)
        loaded_map, shown_map = act(map_file.upload, lambda st, c, path, mode_: cv.load_map_file(ctx, st, c, path,
                                                                                                 mode_),
                                    [state, canvas, map_file, how], canvas)
        shown_map.then(**refresh)
        loaded_map.failure(cleared, None, map_file, **instant)

        # -- exemplars --------------------------------------------------------------------------------
        for k, s in enumerate(slot_uis):
            def placed(st: Any, path: str | None, *box: Any, k: int = k) -> list:
                if path is not None:
                    h.check_upload(ctx, path, f"exemplar {k + 1}")
                if path is None or st is None or st.history is None or (box[2] and box[3]):
                    return [gr.skip()] * 4
                return list(default_box(st.history.source.image.size))

            def clicked(x: Any, y: Any, w: Any, hh: Any, evt: gr.SelectData) -> list:
                box = (int(x or 0), int(y or 0), max(int(w or 0), 1), max(int(hh or 0), 1))
                return ["box", *moved_box(box, (int(evt.index[0]), int(evt.index[1])))]

            # the box's fields are typed in with placement "box"; with "auto" they show the box it gives
            s.placement.change(lambda p: [gr.update(interactive=p == "box")] * 4, s.placement, [s.x, s.y, s.w, s.h],
                               **instant)
            act(s.image.upload, placed, [state, s.image, s.x, s.y, s.w, s.h], [s.x, s.y, s.w, s.h])[0].failure(
                cleared, None, s.image, **instant)
            s.preview.select(guarded(clicked), [s.x, s.y, s.w, s.h],
                             [s.placement, s.x, s.y, s.w, s.h], **instant)

            def removed(st: Any, c: Any, k: int = k) -> list:
                return [*_empty_slot(), cv.clear_slot_map(st, c, k) or gr.skip()]

            act(s.remove.click, removed, [state, canvas], [*s.fields, canvas])[1].then(**refresh)
            for j, button in ((k - 1, s.up), (k + 1, s.down)):
                if not 0 <= j < MAX_SLOTS:
                    continue
                other = slot_uis[j]

                def swapped(st: Any, c: Any, *values: Any, i: int = k, j: int = j) -> list:
                    canvas_update = cv.swap_slot_maps(st, c, i, j)
                    width = len(values) // 2  # the fields of one slot
                    return [*values[width:], *values[:width], canvas_update]

                act(button.click, swapped, [state, canvas, *s.fields, *other.fields],
                    [*s.fields, *other.fields, canvas])[1].then(**refresh)

        # an exemplar box dragged on the canvas: the slot is placed by that box
        box_fields = [f for s in slot_uis for f in (s.placement, s.x, s.y, s.w, s.h)]

        def dragged(evt: gr.EventData) -> list:
            data = getattr(evt, "_data", None) or {}
            k = data.get("slot")
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SLOTS:
                raise InputError(f"canvas box: expected an exemplar number in [1, {MAX_SLOTS}], got {k!r}")
            values = [gr.skip()] * len(box_fields)
            values[(k - 1) * 5:k * 5] = ["box", *check_box(data.get("box"), f"exemplar {k}.box")]
            return values

        canvas.box(guarded(dragged), None, box_fields, **instant)

        # -- selecting by model -------------------------------------------------------------------------
        def pointed(evt: gr.EventData) -> tuple:
            return selecting.clicked(getattr(evt, "_data", None))

        canvas.point(guarded(pointed), None, [pick_clicks, pick_boxes], **instant)
        pick_clear.click(lambda: ("", ""), None, [pick_clicks, pick_boxes], **instant)

        def picked_region(st: Any, c: Any, clicks: Any, boxes: Any, text: Any, depth: Any, grow: Any, feather_: Any,
                          model_: Any, how_: Any) -> list:
            select = selecting.selection_of(clicks, boxes, text, depth, grow, feather_, model_)
            return list(selecting.select_into_map(ctx, st, c, select, how_))

        act(pick_run.click, picked_region, [state, canvas, pick_clicks, pick_boxes, pick_text, pick_depth, pick_grow,
                                            pick_feather, pick_model, how], [canvas, status])[1].then(**refresh)

        # -- settings ---------------------------------------------------------------------------------
        dice.click(lambda: str(secrets.randbits(32)), None, seed, **instant)
        reuse.click(lambda used: "" if used is None else str(int(used)), seed_used, seed, **instant)

        def restored(path: str | None) -> list:
            values = h.restore_settings(ctx, path)
            if not engine.takes_prompt and (values.get("prompt") or values.get("negative_prompt")):
                gr.Warning("The PNG has a prompt; this model takes none, so it is left empty.")
                values |= {"prompt": "", "negative_prompt": ""}
            gr.Info(f"Settings restored (seed {values['seed'] or 'random'}).")
            return [values.get(f.key, gr.skip()) for f in ORDER]

        act(png_settings.upload, restored, png_settings, settings_fields)[0].failure(cleared, None, png_settings,
                                                                                     **instant)
        for box, name in ((prompt_image, "prompt image"), (control_image, "control image")):
            box.upload(guarded(lambda path, name=name: h.check_upload(ctx, path, name)), box, None, **instant
                       ).failure(cleared, None, box, **instant)

        # -- running ----------------------------------------------------------------------------------
        def studio_edit(progress: gr.Progress = gr.Progress(), *values: Any) -> list:  # noqa: B008 - Gradio's way
            # Gradio finds gr.Progress only among the positional parameters, so it comes first here
            st, rid, c, soft, count = values[:5]
            slots = slots_from(list(values[5:5 + len(slot_fields)]))
            given = values[5 + len(slot_fields):]
            settings = dict(zip([f.key for f in ORDER], given[:len(ORDER)]))
            extensions = h.extension_kwargs(*given[len(ORDER):len(ORDER) + len(extension_fields)])
            texts = given[len(ORDER) + len(extension_fields):]
            regions = [tuple(texts[k:k + 3]) for k in range(0, len(texts), 3)]

            def step(done: int, total: int) -> None:
                progress((done, total), desc="denoising", unit="steps")

            return render(h.run_edit(ctx, st, rid, c, soft, slots, settings, step, extensions, variations=count,
                                     texts=regions))

        # Run is disabled in the browser at the click itself (so that a double click starts one edit, not two)
        # and enabled again once the edit has ended, however it ended
        def finished(st: Any) -> list:
            if st is not None:
                engine.forget(st)  # an edit refused or taken out of the queue never reached the model
            return [gr.update(interactive=True), gr.Timer(active=False), ""]

        def arm(st: Any, n: Any, share: Any) -> list:
            rid = h.arm(st)
            try:
                k = schedule_steps(int(n), float(share))
            except (TypeError, ValueError):
                k = 1  # the edit itself will say what is wrong with the field
            engine.wait(st.token(rid), k, owner=st)
            return [rid, gr.Timer(active=True)]

        def tick(st: Any, rid: Any) -> str:
            return "" if st is None or rid is None else queue_text(engine.place(st.token(rid)))

        enable = {"fn": finished, "inputs": state, "outputs": [run, ticker, queue_line], **instant}
        armed = run.click(lambda: gr.update(interactive=False), None, run, js=DISABLE_RUN, **instant).success(
            guarded(arm), [state, steps, strength], [run_id, ticker], **instant)
        ticker.tick(guarded(tick), [state, run_id], queue_line, **instant)
        armed.failure(**enable)
        edited = armed.success(
            guarded(studio_edit), [state, run_id, canvas, softness, variations, *slot_fields, *settings_fields,
                                   *extension_fields, *region_fields],
            view_outputs,
            concurrency_limit=1, concurrency_id=DEVICE, show_progress="full", show_progress_on=[slider, status],
            **private,
        )
        edited.then(**enable)  # after the edit, whether it succeeded (then) or failed (failure)
        edited.failure(**enable)
        # Cancel flags the session's edits (a running one stops between two steps) and takes a queued one out of
        # the queue at once
        stop.click(guarded(h.cancel), state, status, cancels=[edited], **instant).then(**enable)

        # -- history ----------------------------------------------------------------------------------
        for button, handler in ((proceed, h.continue_edit), (undo, h.undo), (redo, h.redo)):
            act(button.click, lambda st, c, handler=handler: render(handler(st, c)), [state, canvas],
                view_outputs)[1].then(**refresh)
        # a variation clicked: it becomes the result shown (and the candidate to continue from)
        def picked(st: Any, c: Any, evt: gr.SelectData) -> list:
            return render(h.pick(st, c, evt.index))

        act(variation_grid.select, picked, [state, canvas], view_outputs)[1].then(**refresh)

        # a history thumbnail clicked: that step in the result panel, before and after, ready to continue from
        def browsed(st: Any, evt: gr.SelectData) -> list:
            return render(step_view(st, evt.index))

        act(gallery.select, browsed, state, view_outputs)
        act(save.click, lambda st: str(h.save_session(st)), state, saved)
        def loaded(st: Any, path: Any) -> list:
            shown = h.load_session(ctx, st, path)
            slots = [gr.skip()] * len(slot_fields) if shown.slots is None else [
                value for slot in shown.slots for value in (slot.image, slot.placement, *slot.box, slot.fit,
                                                            slot.region, slot.condition, slot.cutout, slot.prompt,
                                                            slot.negative, slot.loras)]
            values = [gr.skip()] * len(ORDER) if shown.settings is None else [
                shown.settings.get(f.key, gr.skip()) for f in ORDER]
            texts = [gr.skip()] * len(region_fields) if shown.regions is None else [
                text for pair in shown.regions for text in pair]
            return [*render(shown), *slots, *values, *texts, gr.update(value="strength")]

        load.upload(guarded(loaded), [state, load], [*view_outputs, *slot_fields, *settings_fields, *region_fields,
                                                      target],
                    concurrency_limit=1, concurrency_id=DEVICE, show_progress_on=[gallery, status],
                    **private).then(**refresh)

        # -- API ------------------------------------------------------------------------------------
        def api(source_path: str, map_path: str, settings_json: str) -> tuple[str, dict]:
            path, summary = api_edit(ctx, source_path, map_path, settings_json)
            return str(path), summary

        api_button.click(guarded(api, escape=False), [api_source, api_map, api_settings], [api_result, api_info],
                         api_name="edit",
                         concurrency_limit=1, concurrency_id=DEVICE)
    return demo


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: the page loads nothing from outside the app."""
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])


__all__ = ["CSS", "DEVICE", "build", "guarded", "render", "slots_from", "theme"]
