"""HFBackbone on tiny random-weight PaliGemma and SmolVLM models built offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rlpost.policy.config import HFBackboneConfig
from rlpost.policy.hf_backbone import HFBackbone
from rlpost.policy.hf_tiny import build_tiny_vlm

CAMERAS = ("top", "wrist")
KINDS = ("paligemma", "smolvlm")
TEXT_LEN = 24


@pytest.fixture(scope="module")
def offline():
    """Loading must work with the hub unreachable, as on the robots."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
        yield


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, offline) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlms")
    return {kind: build_tiny_vlm(kind, root / kind) for kind in KINDS}


@pytest.fixture(scope="module", params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def backbone(kind, model_dirs) -> HFBackbone:
    return HFBackbone(HFBackboneConfig(model=str(model_dirs[kind]), max_text_len=TEXT_LEN), CAMERAS)


def _images(batch: int = 3, h: int = 48, w: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {c: torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, generator=g) for c in CAMERAS}


INSTRUCTIONS = ["pick up the red block", "open the drawer", "push"]


def _embed(bb: HFBackbone, images=None, instructions=None):
    with torch.no_grad():
        return bb.embed(images or _images(), instructions or INSTRUCTIONS)


def test_prefix_is_camera_tokens_then_text_tokens_with_padding_masked(backbone):
    pre = _embed(backbone)
    n_img = len(CAMERAS) * backbone.tokens_per_image
    assert pre.tokens.shape == (3, n_img + TEXT_LEN, backbone.width) == (3, backbone.prefix_len, 64)
    assert pre.tokens.dtype == torch.float32 and pre.mask.dtype == torch.bool
    assert pre.mask[:, :n_img].all()
    # One real text token per token of the instruction (as the tokenizer sees it), the rest padding.
    texts = [s + "\n" for s in INSTRUCTIONS] if backbone.family == "paligemma" else INSTRUCTIONS
    n_text = [len(ids) for ids in backbone.tokenizer(texts)["input_ids"]]
    assert pre.mask[:, n_img:].sum(1).tolist() == n_text
    assert 0 < min(n_text) < TEXT_LEN and len(set(n_text)) > 1
    # Text is right-padded and padding rows are zeros.
    assert (pre.mask[:, n_img:].int().diff(dim=1) <= 0).all()
    assert (pre.tokens[~pre.mask] == 0).all()
    assert pre.tokens[pre.mask].abs().sum(-1).gt(0).all()
    assert torch.isfinite(pre.tokens).all()


def test_instruction_changes_image_token_outputs_so_prefix_attention_is_bidirectional(backbone):
    n_img = len(CAMERAS) * backbone.tokens_per_image
    images = _images()
    a = _embed(backbone, images, INSTRUCTIONS)
    b = _embed(backbone, images, ["close the drawer", "open the drawer", "stack the blue cube"])
    assert not torch.allclose(a.tokens[0, :n_img], b.tokens[0, :n_img])  # causal would leave these equal
    torch.testing.assert_close(a.tokens[1], b.tokens[1])  # same inputs, same row


def test_each_camera_image_changes_the_prefix(backbone):
    images = _images()
    other = dict(images, wrist=_images(seed=1)["wrist"])
    assert not torch.allclose(_embed(backbone, images).tokens, _embed(backbone, other).tokens)


def test_padding_and_batch_neighbours_do_not_change_real_tokens(backbone, kind, model_dirs):
    longer = HFBackbone(HFBackboneConfig(model=str(model_dirs[kind]), max_text_len=TEXT_LEN + 9), CAMERAS)
    images = _images()
    a = _embed(backbone, images)
    b = _embed(longer, images)
    p = a.tokens.shape[1]
    torch.testing.assert_close(a.tokens, b.tokens[:, :p], atol=1e-5, rtol=1e-5)
    assert not b.mask[:, p:].any()
    alone = _embed(backbone, {c: x[2:] for c, x in images.items()}, INSTRUCTIONS[2:])
    torch.testing.assert_close(alone.tokens[0], a.tokens[2], atol=1e-5, rtol=1e-5)


def test_paligemma_prefix_equals_the_models_own_prefix_lm_forward(model_dirs):
    bb = HFBackbone(HFBackboneConfig(model=str(model_dirs["paligemma"]), max_text_len=TEXT_LEN), CAMERAS)
    images = _images()
    pre = _embed(bb, images)
    # PaliGemmaModel.forward with image placeholder tokens and token_type_ids=0 (all prefix).
    ids, text_mask = bb._tokenize(INSTRUCTIONS, 3)
    n_img = len(CAMERAS) * bb.tokens_per_image
    input_ids = torch.cat([torch.full((3, n_img), bb.model.config.image_token_id), ids], 1)
    attention = torch.cat([torch.ones(3, n_img, dtype=torch.long), text_mask.long()], 1)
    pixels = torch.stack([bb._pixels(images[c]) for c in CAMERAS], 1).flatten(0, 1)
    with torch.no_grad():
        ref = bb.model(
            input_ids=input_ids,
            pixel_values=pixels,
            attention_mask=attention,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
    torch.testing.assert_close(pre.tokens[pre.mask], ref[pre.mask], atol=1e-5, rtol=1e-5)


def test_save_assets_then_from_assets_and_load_state_dict_reproduces_outputs_exactly(backbone, tmp_path):
    backbone.save_assets(tmp_path)
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    rebuilt = HFBackbone.from_assets(tmp_path, backbone.cfg, CAMERAS)
    assert rebuilt.config_dict() == backbone.config_dict()
    assert not torch.equal(_embed(rebuilt).tokens, _embed(backbone).tokens)  # random init before loading
    rebuilt.load_state_dict(backbone.state_dict(), strict=True)
    assert torch.equal(_embed(rebuilt).tokens, _embed(backbone).tokens)
    assert rebuilt.fingerprint() == backbone.fingerprint()
    json.dumps(backbone.config_dict())


def test_state_dict_holds_the_transformers_weights_once(backbone):
    names = list(backbone.state_dict())
    assert names and all(n.startswith("model.") for n in names)
    assert len(names) == len(backbone.model.state_dict())


def test_freeze_stops_gradients_and_keeps_eval_mode_and_determinism(kind, model_dirs):
    bb = HFBackbone(HFBackboneConfig(model=str(model_dirs[kind]), max_text_len=TEXT_LEN), CAMERAS)
    bb.freeze()
    bb.train()
    assert bb.frozen
    assert not any(p.requires_grad for p in bb.parameters())
    assert not any(m.training for m in bb.modules())
    first = bb(_images(), INSTRUCTIONS)
    second = bb(_images(), INSTRUCTIONS)
    assert torch.equal(first.tokens, second.tokens) and not first.tokens.requires_grad


def test_unfrozen_backbone_passes_gradients_to_its_weights(kind, model_dirs):
    bb = HFBackbone(HFBackboneConfig(model=str(model_dirs[kind]), max_text_len=TEXT_LEN), CAMERAS)
    bb(_images(), INSTRUCTIONS).tokens.square().mean().backward()
    emb = bb.model.get_input_embeddings().weight
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    patch = next(p for n, p in bb.named_parameters() if "patch_embedding" in n)
    assert patch.grad is not None and patch.grad.abs().sum() > 0


def test_overlong_instruction_raises_naming_its_length_and_the_limit(backbone):
    text = "zq xv " * 40
    with pytest.raises(
        ValueError, match=rf"instruction 1 .* is \d+ tokens, more than max_text_len={TEXT_LEN}"
    ):
        _embed(backbone, _images(2), ["push", text])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda x: x.float(), r"camera 'wrist' image is torch.float32 \(3, 48, 40, 3\)"),
        (lambda x: x[..., 0], r"camera 'wrist' image is torch.uint8 \(3, 48, 40\)"),
        (lambda x: torch.cat([x, x[..., :1]], -1), r"camera 'wrist' image is torch.uint8 \(3, 48, 40, 4\)"),
        (lambda x: x[:2], r"camera 'wrist' has batch 2, camera 'top' has 3"),
    ],
)
def test_bad_image_raises_naming_the_camera_and_shape(backbone, bad, match):
    images = _images()
    images["wrist"] = bad(images["wrist"])
    with pytest.raises(ValueError, match=match):
        _embed(backbone, images)


def test_missing_camera_or_instruction_count_mismatch_raises(backbone):
    with pytest.raises(ValueError, match=r"got cameras \['top'\], expected \['top', 'wrist'\]"):
        _embed(backbone, {"top": _images()["top"]})
    with pytest.raises(ValueError, match="2 instructions for a batch of 3"):
        _embed(backbone, _images(), INSTRUCTIONS[:2])


def test_image_size_override_changes_token_count_and_still_runs(kind, model_dirs):
    bb = HFBackbone(
        HFBackboneConfig(model=str(model_dirs[kind]), max_text_len=TEXT_LEN, image_size=48), CAMERAS
    )
    expected = (48 // 8) ** 2 if kind == "paligemma" else (48 // 8 // 2) ** 2
    assert bb.tokens_per_image == expected
    pre = _embed(bb)
    assert pre.tokens.shape == (3, 2 * expected + TEXT_LEN, 64) and torch.isfinite(pre.tokens).all()


def test_normalisation_comes_from_the_processor_config_else_siglip_default(model_dirs, tmp_path, caplog):
    model = tmp_path / "m"
    shutil.copytree(model_dirs["paligemma"], model)
    proc = model / "preprocessor_config.json"
    cfg = json.loads(proc.read_text())
    proc.write_text(json.dumps(dict(cfg, image_mean=[0.4, 0.45, 0.5], image_std=[0.2, 0.25, 0.3])))
    bb = HFBackbone(HFBackboneConfig(model=str(model), max_text_len=TEXT_LEN), CAMERAS)
    assert bb.image_mean == [0.4, 0.45, 0.5] and bb.image_std == [0.2, 0.25, 0.3]
    assert bb.norm_source.endswith("preprocessor_config.json")
    proc.unlink()
    with caplog.at_level("WARNING", logger="rlpost.policy.hf_backbone"):
        default = HFBackbone(HFBackboneConfig(model=str(model), max_text_len=TEXT_LEN), CAMERAS)
    assert default.image_mean == [0.5] * 3 and default.image_std == [0.5] * 3
    assert "SigLIP" in default.norm_source and "0.5" in caplog.text
    assert bb.fingerprint() != default.fingerprint()


def test_unsupported_model_family_raises_naming_the_supported_ones(tmp_path, offline):
    from transformers import GemmaConfig

    GemmaConfig(hidden_size=32, num_hidden_layers=1, head_dim=8).save_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match=r"'gemma' model; supported families: \['paligemma', 'idefics3', 'smolvlm'\]"
    ):
        HFBackbone(HFBackboneConfig(model=str(tmp_path)), CAMERAS)


def test_build_tiny_vlm_rejects_an_unknown_size_with_a_suggestion(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'text_layers'"):
        build_tiny_vlm("paligemma", tmp_path, text_layer=3)
    with pytest.raises(ValueError, match="kind='llava'"):
        build_tiny_vlm("llava", tmp_path)  # type: ignore[arg-type]
