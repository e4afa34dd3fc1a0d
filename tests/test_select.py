"""pixels.select and `pixels select` on tiny randomly initialised selection models, built here as transformers' own
test suites build them, saved with save_pretrained and loaded back offline through pixels' loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from pixels.cli import main
from pixels.errors import InputError, ModelNotFoundError, UnsafeCheckpointError
from pixels.outputs.writers import read_metadata
from pixels.select import Select, clear_cache, depth_strength, relative_depth, resolve_selection, segment, tools
from pixels.select import models as select_models
from pixels.select import resolve as resolve_module
from pixels.testing.tiny import make_tokenizer

# --- tiny models -------------------------------------------------------------------------------------------------


def _sam2(folder):
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(hidden_size=12, image_size=128, patch_stride=4, patch_kernel_size=7, patch_padding=3,
                                  blocks_per_stage=[1, 1, 1, 1], embed_dim_per_stage=[12, 24, 48, 96],
                                  num_attention_heads_per_stage=[1, 2, 4, 8])
    config = Sam2Config(
        vision_config=Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                                       backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=32),
        prompt_encoder_config=Sam2PromptEncoderConfig(image_size=128, patch_size=16, mask_input_channels=8,
                                                      hidden_size=32, num_point_embeddings=4),
        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                                  iou_head_depth=3, iou_head_hidden_dim=32),
        image_size=128, memory_attention_hidden_size=12, memory_encoder_hidden_size=32, mask_downsampler_embed_dim=32,
        memory_fuser_embed_dim=32, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=32)
    Sam2Model(config).save_pretrained(folder, safe_serialization=True)


def _sam(folder):
    from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=36, intermediate_size=72, projection_dim=62, output_channels=32,
                                      num_hidden_layers=2, num_attention_heads=4, image_size=24, patch_size=2,
                                      window_size=14, global_attn_indexes=[1], mlp_dim=72, num_pos_feats=16),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=32, image_size=24, patch_size=2, mask_input_channels=4,
                                                     num_point_embeddings=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                                 iou_head_hidden_dim=32))
    SamModel(config).save_pretrained(folder, safe_serialization=True)


TEXT = {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 32, "bos_token_id": 0, "eos_token_id": 1,
        "pad_token_id": 1}


def _sam3(folder):
    from transformers import Sam3Model
    from transformers.models.sam3.configuration_sam3 import (
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    backbone = Sam3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                             image_size=224, patch_size=14, window_size=8, global_attn_indexes=[0, 1])
    config = Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=32, scale_factors=[2.0, 1.0]),
        text_config={**TEXT, "projection_dim": 32, "hidden_act": "gelu"},
        geometry_encoder_config=Sam3GeometryEncoderConfig(hidden_size=32, num_layers=1, num_attention_heads=4,
                                                          intermediate_size=64, mask_fuser_hidden_size=32,
                                                          mask_fuser_num_layers=1),
        detr_encoder_config=Sam3DETREncoderConfig(hidden_size=32, num_layers=1, num_attention_heads=4,
                                                  intermediate_size=64),
        detr_decoder_config=Sam3DETRDecoderConfig(hidden_size=32, num_layers=1, num_queries=5, num_attention_heads=4,
                                                  intermediate_size=64),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=32, num_upsampling_stages=2))
    Sam3Model(config).save_pretrained(folder, safe_serialization=True)
    make_tokenizer(folder / "tokenizer").save_pretrained(folder)


def _grounding_dino(folder):
    from transformers import BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    config = GroundingDinoConfig(
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=4, decoder_ffn_dim=4, num_queries=3, num_feature_levels=4, encoder_n_points=2,
        decoder_n_points=6, use_timm_backbone=False, max_text_len=16,
        backbone_config=SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                   image_size=98, out_indices=[2, 3, 4]),
        text_config={"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 8,
                     "max_position_embeddings": 16, "model_type": "bert", "vocab_size": 100})
    GroundingDinoForObjectDetection(config).save_pretrained(folder, safe_serialization=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "cat", "sofa", "moon"]))
    BertTokenizer(str(vocab), model_max_length=16).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": 64, "longest_edge": 96}}))


def _clipseg(folder):
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    config = CLIPSegConfig(
        text_config={**TEXT, "intermediate_size": 37, "max_position_embeddings": 77},
        vision_config={"image_size": 32, "patch_size": 4, "hidden_size": 32, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "intermediate_size": 37},
        projection_dim=32, reduce_dim=16, extract_layers=(1,), decoder_num_attention_heads=4)
    CLIPSegForImageSegmentation(config).save_pretrained(folder, safe_serialization=True)
    make_tokenizer(folder / "tokenizer").save_pretrained(folder)


def _depth(folder):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(image_size=32, patch_size=16, hidden_size=4, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=8, out_features=["stage1", "stage2"], apply_layernorm=False,
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=4, patch_size=16,
                                 neck_hidden_sizes=[2, 2], fusion_hidden_size=6, head_hidden_size=4)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 32, "width": 32}, "keep_aspect_ratio": True, "ensure_multiple_of": 16}))


BUILDERS = {"sam2": _sam2, "sam": _sam, "sam3": _sam3, "grounding-dino": _grounding_dino, "clipseg": _clipseg,
            "depth": _depth}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The folder of each tiny selection model, by name, built once on first use (seeded, so the same each run)."""
    built: dict = {}

    def get(name: str) -> str:
        if name not in built:
            folder = tmp_path_factory.mktemp(f"select-{name}")
            torch.manual_seed(0)
            BUILDERS[name](folder)
            built[name] = str(folder)
        return built[name]

    return get


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def photo(width: int = 51, height: int = 37, seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype(np.uint8))


def square(size: int = 40, x0: int = 10, y0: int = 12, side: int = 15) -> np.ndarray:
    m = np.zeros((size, size))
    m[y0:y0 + side, x0:x0 + side] = 1.0
    return m


# --- clicks and boxes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sam2", "sam"])
@pytest.mark.parametrize("size", [(51, 37), (29, 53)])
def test_click_mask_has_the_photo_size_at_odd_sizes(tiny, name, size):
    picture = photo(*size)
    for select in (Select(points=[(5, 7)], negative=[(20, 21)], model=tiny(name)),
                   Select(boxes=[(2, 3, 20, 15), (10, 20, 9, 11)], model=tiny(name), pick="all")):
        strength, record = resolve_selection(select, picture)
        assert strength.shape == (size[1], size[0]) and strength.dtype == np.float32
        assert set(np.unique(strength)) <= {0.0, 1.0}
        assert record["size"] == list(size) and record["region"]["class"] in ("Sam2Model", "SamModel")
        assert record["selected_pixels"] == int(np.count_nonzero(strength))


@pytest.mark.parametrize(("given", "param"), [
    ({"points": [(5, 5), (51.5, 3)]}, "points[1]"), ({"points": [(5, 5)], "negative": [(-1, 3)]}, "negative[0]"),
    ({"boxes": [(60, 3, 10, 10)]}, "boxes[0]"), ({"points": [(5, 40)]}, "points[0]"),
])
def test_points_and_boxes_outside_the_photo_are_refused_naming_the_argument(tiny, given, param):
    with pytest.raises(InputError) as error:
        resolve_selection(Select(**given, model=tiny("sam2")), photo(51, 37))
    assert error.value.param == param and "outside the 51x37 photo" in str(error.value)


def test_select_checks_its_fields_naming_them():
    for given, param in [({}, "points"), ({"points": [(1, 2, 3)]}, "points[0]"), ({"boxes": [(1, 2, 0, 3)]}, "boxes[0]"),
                         ({"text": "  "}, "text"), ({"text": "cat", "pick": "most"}, "pick"),
                         ({"depth": (0.8, 0.2)}, "depth"), ({"depth": (0, 1), "direction": "up"}, "direction"),
                         ({"depth": (0, 1), "gamma": 0}, "gamma"), ({"points": [(1, 1)], "grow": -1}, "grow"),
                         ({"points": [(1, 1)], "feather": float("nan")}, "feather"),
                         ({"points": [(1, 1)], "text": "cat"}, "text"), ({"points": [(1, 1)], "gamma": 2}, "gamma"),
                         ({"points": [(1, 1)], "threshold": 0.3}, "threshold"),
                         ({"depth": (0, 1), "model": "sam"}, "model"), ({"depth": (0, 1), "pick": "all"}, "pick"),
                         ({"points": [(1, 1)], "mask_model": "sam"}, "mask_model"),
                         ({"points": [(1, 1)], "boxes": [(0, 0, 2, 2), (3, 3, 2, 2)]}, "boxes")]:
        with pytest.raises(InputError) as error:
            Select(**given)
        assert error.value.param == param, given


def test_a_negative_click_is_labelled_0_in_the_model_input(tiny):
    frame = segment.Frame(51, 37, 128)
    inputs = segment.click_inputs(frame, [(5, 7)], [(20, 21), (30, 2)], [])
    assert inputs["input_labels"].tolist() == [[[1, 0, 0]]]
    assert inputs["input_points"].shape == (1, 1, 3, 2)
    assert torch.allclose(inputs["input_points"][0, 0, 1], torch.tensor([20 * 128 / 51, 21 * 128 / 37]))

    seen = []
    loaded = select_models.cached(tiny("sam2"), "points", device=torch.device("cpu"), dtype=torch.float32)
    hook = loaded.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_labels"].clone()),
                                                  with_kwargs=True)
    try:
        resolve_selection(Select(points=[(5, 7)], negative=[(20, 21)], model=tiny("sam2")), photo())
        resolve_selection(Select(points=[(5, 7)], model=tiny("sam2")), photo())
    finally:
        hook.remove()
    assert [s.tolist() for s in seen] == [[[[1, 0]]], [[[1]]]]


def _scored(loaded, scores):
    """Make the click model report `scores` as its candidates' IoU scores."""
    def hook(module, args, kwargs, out):
        out.iou_scores = torch.tensor(scores, dtype=out.iou_scores.dtype).expand_as(out.iou_scores).clone()
        return out

    return loaded.model.register_forward_hook(hook, with_kwargs=True)


def test_best_is_the_candidate_with_the_highest_iou_and_all_is_their_union(tiny):
    loaded = select_models.cached(tiny("sam2"), "points", device=torch.device("cpu"), dtype=torch.float32)
    hook = _scored(loaded, [0.2, 0.1, 0.9])
    try:
        [candidates] = segment.click_candidates(loaded, photo(), [(5, 7)])
        best, record = resolve_selection(Select(points=[(5, 7)], model=tiny("sam2")), photo())
        second, _ = resolve_selection(Select(points=[(5, 7)], model=tiny("sam2"), pick=2), photo())
        union, _ = resolve_selection(Select(points=[(5, 7)], model=tiny("sam2"), pick="all"), photo())
        largest, _ = resolve_selection(Select(points=[(5, 7)], model=tiny("sam2"), pick="largest"), photo())
    finally:
        hook.remove()
    assert record["region"]["objects"][0]["chosen"] == [2]
    assert np.array_equal(best, candidates.masks[2]) and np.array_equal(second, candidates.masks[0])
    assert np.array_equal(union, np.logical_or.reduce(candidates.masks))
    sizes = candidates.masks.reshape(3, -1).sum(axis=1)
    assert np.array_equal(largest, candidates.masks[int(np.argmax(sizes))])
    with pytest.raises(InputError, match="only 3") as error:
        resolve_selection(Select(points=[(5, 7)], model=tiny("sam2"), pick=4), photo())
    assert error.value.param == "pick"


def test_choose_orders_by_score_and_breaks_ties_by_order():
    masks = np.zeros((3, 4, 4), bool)
    masks[0, 0, 0] = masks[1, :2, :2] = masks[2, 3] = True
    found = segment.Candidates(masks, np.array([0.5, 0.5, 0.7]))
    assert segment.choose(found, "best", "x")[1] == [2]
    assert segment.choose(found, 2, "x")[1] == [0] and segment.choose(found, 3, "x")[1] == [1]
    assert segment.choose(found, "largest", "x")[1] == [1]
    assert segment.choose(found, "all", "x")[1] == [0, 1, 2]


# --- a phrase ----------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(transformers, "Sam3Model"),
                    reason=f"transformers {transformers.__version__} has no Sam3Model (SAM 3 needs a newer one)")
def test_sam3_instances_of_a_phrase(tiny):
    picture = photo(45, 31)
    everything, record = resolve_selection(Select(text="the cat", model=tiny("sam3"), threshold=0.0, pick="all"),
                                           picture)
    assert everything.shape == (31, 45)
    region = record["region"]
    assert region["class"] == "Sam3Model" and region["threshold"] == 0.0 and len(region["instances"]) == 5
    first, record = resolve_selection(Select(text="the cat", model=tiny("sam3"), threshold=0.0), picture)
    scores = [i["score"] for i in record["region"]["instances"]]
    assert record["region"]["chosen"] == [int(np.argmax(scores))]
    assert np.all(everything >= first)  # the union holds the best
    with pytest.raises(InputError, match="found nothing") as error:
        resolve_selection(Select(text="the cat", model=tiny("sam3"), threshold=0.999), picture)
    assert error.value.param == "text"


def test_grounding_dino_boxes_are_masked_by_the_click_model(tiny):
    picture = photo(45, 31)
    select = Select(text="the sofa", model=tiny("grounding-dino"), mask_model=tiny("sam2"), threshold=0.0,
                    pick="all")
    strength, record = resolve_selection(select, picture)
    region = record["region"]
    assert strength.shape == (31, 45) and region["class"] == "GroundingDinoForObjectDetection"
    assert region["mask_model"]["class"] == "Sam2Model" and len(region["boxes"]) == len(region["instances"]) >= 1
    for box in region["boxes"]:
        assert 0 <= box["box"][0] <= box["box"][2] <= 45 and 0 <= box["box"][1] <= box["box"][3] <= 31


def test_clipseg_instances_are_the_parts_above_the_threshold(tiny):
    picture = photo(45, 31)
    loaded = select_models.cached(tiny("clipseg"), "text", device=torch.device("cpu"), dtype=torch.float32)
    probability = segment.clipseg_probability(loaded, picture, "the moon")
    assert probability.shape == (31, 45)
    threshold = float(np.median(probability))
    union, record = resolve_selection(Select(text="the moon", model=tiny("clipseg"), threshold=threshold, pick="all"),
                                      picture)
    assert np.array_equal(union > 0, probability > threshold)
    _, count = tools.components(probability > threshold)
    assert len(record["region"]["instances"]) == count


def test_a_model_for_another_task_is_refused_naming_it(tiny):
    with pytest.raises(InputError, match="cannot be used for text") as error:
        resolve_selection(Select(text="the cat", model=tiny("sam2")), photo())
    assert error.value.param == "model"
    with pytest.raises(InputError, match="cannot be used for depth") as error:
        resolve_selection(Select(depth=(0, 1), depth_model=tiny("sam2")), photo())
    assert error.value.param == "depth_model"


# --- depth -------------------------------------------------------------------------------------------------------


def test_depth_strength_ramps_between_near_and_far():
    d = np.linspace(0, 1, 11)[None]  # 0, 0.1, ..., 1
    far = depth_strength(d, 0.2, 0.6)
    assert np.all(far[d <= 0.2] == 0) and np.all(far[d >= 0.6] == 1)
    assert np.allclose(far[0, 3:6], [0.25, 0.5, 0.75])
    near = depth_strength(d, 0.2, 0.6, "near")
    assert np.allclose(near, 1 - far)
    assert np.allclose(depth_strength(d, 0.2, 0.6, gamma=2), far ** 2)
    assert depth_strength(d, 0.2, 0.6, gamma=2)[0, 2] == 0 and depth_strength(d, 0.2, 0.6, gamma=2)[0, 8] == 1
    assert depth_strength(d, 0.5, 0.5).tolist() == [[0] * 5 + [1] * 6]
    assert depth_strength(d, 0.5, 0.5, "near").tolist() == [[1] * 6 + [0] * 5]


def test_relative_depth_is_0_at_the_nearest_pixel():
    disparity = np.array([[4.0, 2.0], [1.0, 3.0]])  # larger = nearer, as Depth Anything predicts
    assert relative_depth(disparity).tolist() == [[0.0, 2 / 3], [1.0, 1 / 3]]
    assert relative_depth(np.ones((2, 2))).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_depth_selection_maps_the_model_depth(tiny, monkeypatch):
    picture = photo(45, 31)
    strength, record = resolve_selection(Select(depth=(0.2, 0.7), depth_model=tiny("depth")), picture)
    assert strength.shape == (31, 45) and record["depth"]["class"] == "DepthAnythingForDepthEstimation"
    assert strength.min() == 0 and strength.max() == 1

    disparity = np.tile(np.linspace(1, 0, 45), (31, 1))  # near on the left
    monkeypatch.setattr(resolve_module, "predict_disparity", lambda loaded, photo: disparity)
    strength, _ = resolve_selection(Select(depth=(0.2, 0.7), gamma=0.5, depth_model=tiny("depth")), picture)
    expected = depth_strength(relative_depth(disparity), 0.2, 0.7, "far", 0.5).astype(np.float32)
    assert np.array_equal(strength, expected)
    near, _ = resolve_selection(Select(depth=(0.2, 0.7), direction="near", depth_model=tiny("depth")), picture)
    assert near[0, 0] == 1 and near[0, -1] == 0

    region = Select(boxes=[(0, 0, 45, 31)], depth=(0.2, 0.7), model=tiny("sam2"), depth_model=tiny("depth"))
    weighted, record = resolve_selection(region, picture)
    mask, _ = resolve_selection(Select(boxes=[(0, 0, 45, 31)], model=tiny("sam2")), picture)
    assert np.array_equal(weighted, (mask * depth_strength(relative_depth(disparity), 0.2, 0.7)).astype(np.float32))
    assert "region" in record and "depth" in record


# --- the tools ---------------------------------------------------------------------------------------------------


def test_grow_then_shrink_gives_the_square_back():
    m = square()
    grown = tools.grow(m, 3)
    assert grown[12 + 7, 10 - 3] == 1 and grown[12 + 7, 10 - 4] == 0  # 3 pixels out at the middle of a side
    assert grown[12 - 3, 10 - 3] == 0  # the corners round
    assert np.array_equal(tools.shrink(grown, 3), m)
    assert np.array_equal(tools.shrink(m, 2), square(x0=12, y0=14, side=11))
    assert np.array_equal(tools.grow(m, 0), m)


def test_fill_holes_fills_enclosed_gaps_only():
    m = square()
    m[16:20, 14:18] = 0  # a hole inside
    m[12:14, 10:12] = 0  # a notch at the corner: it touches the outside
    filled = tools.fill_holes(m)
    assert np.all(filled[16:20, 14:18] == 1) and np.all(filled[12:14, 10:12] == 0)
    assert np.array_equal(filled[m > 0], m[m > 0])


def test_largest_keeps_the_biggest_part():
    m = square(side=5) + square(x0=20, y0=20, side=8)
    kept = tools.largest_part(m)
    assert np.array_equal(kept, square(x0=20, y0=20, side=8))


def test_invert_and_feather_leave_zeros_zero():
    m = square() * 0.8
    feathered = tools.refine(m, feather=4)
    assert np.array_equal(feathered == 0, m == 0) and np.all(feathered <= m)
    assert feathered[19, 17] == 0.8 and 0 < feathered[12, 17] < 0.8  # the middle kept, the edge softened
    inverted = tools.refine(square(), invert=True)
    assert np.array_equal(inverted, 1 - square())
    soft = tools.refine(square(), invert=True, feather=3)  # feathered on the inverted side: the square stays 0
    assert np.array_equal(soft == 0, square() == 1) and np.all(soft <= inverted)
    assert 0 < soft[12, 9] < 1 and soft[0, 0] == 1


def test_feathered_selection_keeps_its_zeros(tiny):
    select = Select(boxes=[(5, 5, 30, 20)], model=tiny("sam2"))
    hard, _ = resolve_selection(select, photo())
    soft, _ = resolve_selection(Select(**{**select.to_dict(), "feather": 4, "grow": 1}), photo())
    grown = tools.grow(hard.astype(np.float64), 1)
    assert np.array_equal(soft == 0, grown == 0) and np.all(soft <= grown)
    inverted, _ = resolve_selection(Select(**{**select.to_dict(), "invert": True}), photo())
    assert np.array_equal(inverted, 1 - hard)


# --- the spec, replay and the cache ------------------------------------------------------------------------------


def test_select_round_trips_through_a_dict_and_json():
    select = Select(points=[(1, 2.5)], negative=[(3, 4)], boxes=[(0, 0, 10, 12)], pick=2, grow=3, shrink=1,
                    fill_holes=True, largest=True, feather=2.5, invert=True, depth=(0.1, 0.9), direction="near",
                    gamma=2.0, model="sam2.1-small", depth_model="depth-anything-v2-base")
    data = json.loads(json.dumps(select.to_dict()))
    assert Select.from_dict(data) == select and Select.from_dict({"text": "a cat"}) == Select(text="a cat")
    with pytest.raises(InputError, match="unknown key") as error:
        Select.from_dict({**data, "colour": "red"})
    assert error.value.param == "colour"


def test_the_same_selection_gives_the_same_map_bit_for_bit(tiny):
    select = Select(points=[(5, 7)], negative=[(30, 20)], feather=3, grow=2, model=tiny("sam2"))
    first, record = resolve_selection(select, photo())
    clear_cache()  # loaded again
    again, _ = resolve_selection(Select.from_dict(record["select"]), photo())
    assert first.tobytes() == again.tobytes()


def test_a_model_is_loaded_once_for_many_selections(tiny, monkeypatch):
    loads = []
    original = transformers.Sam2Model.from_pretrained.__func__

    def counted(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.Sam2Model, "from_pretrained", classmethod(counted))
    for k in range(3):
        resolve_selection(Select(points=[(5 + k, 7)], model=tiny("sam2")), photo(seed=k))
    assert len(loads) == 1
    resolve_selection(Select(points=[(5, 7)], model=tiny("sam2")), photo(), dtype="bf16")  # another dtype
    assert len(loads) == 2
    clear_cache()
    resolve_selection(Select(points=[(5, 7)], model=tiny("sam2")), photo())
    assert len(loads) == 3


def test_a_class_missing_from_transformers_is_named(tiny, monkeypatch):
    monkeypatch.setitem(select_models.ARCHITECTURES, "sam2", {"points": ("Sam9Model", "sam2")})  # a future class
    with pytest.raises(InputError, match="Sam9Model") as error:
        resolve_selection(Select(points=[(1, 1)], model=tiny("sam2")), photo())
    assert error.value.param == "model" and transformers.__version__ in str(error.value)


def test_a_missing_model_offline_says_how_to_fetch_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for select, param, repo in [(Select(points=[(1, 1)]), "model", "facebook/sam2.1-hiera-tiny"),
                                (Select(text="a cat"), "model", "facebook/sam3"),
                                (Select(depth=(0, 1)), "depth_model", "depth-anything/Depth-Anything-V2-Small-hf"),
                                (Select(points=[(1, 1)], model="someone/no-such-sam"), "model", "someone/no-such-sam")]:
        with pytest.raises(ModelNotFoundError) as error:
            resolve_selection(select, photo())
        text = str(error.value)
        assert error.value.param == param and f"hf download {repo}" in text and "\n" not in text


def test_folders_with_pickles_only_are_refused(tmp_path, tiny):
    from transformers import Sam2Model

    Sam2Model.from_pretrained(tiny("sam2")).save_pretrained(tmp_path, safe_serialization=False)
    for weights in tmp_path.glob("*.safetensors"):  # transformers may write safetensors regardless
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(UnsafeCheckpointError) as error:
        resolve_selection(Select(points=[(1, 1)], model=str(tmp_path)), photo())
    assert error.value.param == "model"
    with pytest.raises(InputError, match="without config.json"):
        resolve_selection(Select(points=[(1, 1)], model=str(tmp_path / "..")), photo())


def test_sam3_tracker_takes_clicks(tiny, tmp_path):
    try:
        from transformers import Sam3TrackerConfig, Sam3TrackerModel
        from transformers.models.sam3.configuration_sam3 import Sam3VisionConfig, Sam3ViTConfig

        backbone = Sam3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 image_size=112, patch_size=14, window_size=4, global_attn_indexes=[0, 1])
        config = Sam3TrackerConfig(
            vision_config=Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=32,
                                           scale_factors=[4.0, 2.0, 1.0], backbone_feature_sizes=[[32, 32], [16, 16],
                                                                                                 [8, 8]]),
            prompt_encoder_config={"image_size": 112, "patch_size": 14, "hidden_size": 32, "mask_input_channels": 8},
            mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                 "iou_head_hidden_dim": 32})
        Sam3TrackerModel(config).save_pretrained(tmp_path, safe_serialization=True)
    except Exception as error:  # noqa: BLE001 - the installed transformers cannot build it tiny
        pytest.skip(f"a tiny Sam3TrackerModel cannot be built with transformers {transformers.__version__}:"
                    f" {type(error).__name__}: {str(error)[:200]}")
    strength, record = resolve_selection(Select(points=[(5, 7)], model=str(tmp_path)), photo())
    assert strength.shape == (37, 51) and record["region"]["class"] == "Sam3TrackerModel"


# --- pixels select -----------------------------------------------------------------------------------------------


def test_pixels_select_writes_a_map_and_a_preview_that_replay(tiny, tmp_path, capsys):
    source = tmp_path / "photo.png"
    photo(51, 37).save(source)
    out, preview = tmp_path / "map.png", tmp_path / "preview.png"
    argv = [str(source), "--point", "5,7", "--negative", "30,20", "--grow", "2", "--feather", "3",
            "--model", tiny("sam2"), "-o", str(out), "--preview", str(preview)]
    assert main(["select", *argv]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    written = np.asarray(Image.open(out))
    assert written.shape == (37, 51) and Image.open(preview).size == (51, 37)
    record = read_metadata(out)["selection"]
    strength, _ = resolve_selection(Select.from_dict(record["select"]), Image.open(source))
    assert np.array_equal(written, (strength * 255).round().astype(np.uint8))
    shown = np.asarray(Image.open(preview).convert("RGB"), np.int16)
    red = shown[..., 0] - np.asarray(Image.open(source).convert("RGB"), np.int16)[..., 0]
    assert np.all(red[written == 0] == 0) and np.all(red[written == 255] >= 0)

    before = out.read_bytes()
    assert main(["select", *argv[:-4], "-o", str(out)]) == 2  # no --force: refused, nothing replaced
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["select", *argv, "--force"]) == 0


@pytest.mark.parametrize(("flags", "named"), [
    (["--point", "5,x"], "--point[0]: expected X,Y"), (["--point", "5,7", "--point", "500,7"], "--point[1]:"),
    (["--box", "1,2,3"], "--box[0]:"), (["--point", "5,7", "--depth", "0.5"], "--depth:"),
    (["--point", "5,7", "--gamma", "2"], "--gamma:"), (["--point", "5,7", "--pick", "most"], "--pick:"),
    (["--text", "cat", "--mask-model", "x", "--model", "clipseg", "--point", "1,1"], "--text:"),
])
def test_pixels_select_names_the_bad_flag(tiny, tmp_path, capsys, flags, named):
    source = tmp_path / "photo.png"
    photo(51, 37).save(source)
    model = [] if "--model" in flags else ["--model", tiny("sam2")]
    assert main(["select", str(source), *flags, *model, "-o", str(tmp_path / "map.png")]) == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert not (tmp_path / "map.png").exists()


def test_pixels_select_offline_names_the_fetch_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "photo.png"
    photo().save(source)
    assert main(["select", str(source), "--text", "the cat", "-o", str(tmp_path / "map.png")]) == 2
    err = capsys.readouterr().err
    assert "--model: sam3 (facebook/sam3)" in err and "hf download facebook/sam3" in err


@pytest.mark.parametrize("name", ["sam2", "sam"])
def test_a_photo_is_embedded_once_for_every_further_click_and_box(tiny, name):
    """The image encoder runs once per photo: further clicks and boxes on it run the prompt encoder and the mask
    decoder only, and give what the full model call gives."""
    model = tiny(name)
    loaded = select_models.cached(model, "points", device=torch.device("cpu"), dtype=torch.float32, name="model")
    calls = []
    loaded.model.vision_encoder.register_forward_hook(lambda *args: calls.append(1))
    picture = photo(51, 37, seed=4)
    first = resolve_selection(Select(points=[(5, 7)], model=model), picture).strength
    again = resolve_selection(Select(points=[(30, 20)], negative=[(5, 7)], model=model), picture).strength
    boxed = resolve_selection(Select(boxes=[(3, 4, 20, 15)], model=model), picture.copy()).strength
    assert len(calls) == 1 and first.shape == again.shape == boxed.shape == (37, 51)
    resolve_selection(Select(points=[(5, 7)], model=model), photo(51, 37, seed=5))  # another photo
    assert len(calls) == 2
    # the cached embedding gives the full model call's masks, bit for bit
    frame = segment.click_frame(loaded, picture.size)
    found = segment.click_candidates(loaded, picture, [(30, 20)], [(5, 7)])
    norm = segment._normalisation(loaded, segment.IMAGENET_MEAN, segment.IMAGENET_STD)
    pixels = frame.pixels(picture, norm["mean"], norm["std"], norm["rescale"])
    with torch.no_grad():
        out = loaded.model(pixel_values=pixels, multimask_output=True,
                           **segment.click_inputs(frame, [(30, 20)], [(5, 7)], []))
    np.testing.assert_array_equal(found[0].masks, (frame.masks(out.pred_masks[0].float())[0] > 0).numpy())
