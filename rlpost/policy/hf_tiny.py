"""Random-weight transformers vision-language models built offline, for tests and benchmarks.

Nothing can be downloaded from the hub here, so :func:`build_tiny_vlm` builds a
PaliGemma- or SmolVLM-shaped model from configs, trains a small tokenizer on
robot instructions, and saves model, tokenizer and image-processor config with
``save_pretrained`` into one directory. That directory loads like a hub
checkpoint (``HFBackbone`` / ``from_pretrained``) with ``HF_HUB_OFFLINE=1``.

The default sizes give a model of a few hundred thousand parameters (tests);
:data:`PALIGEMMA_BENCH_SIZES` gives an ~86M-parameter PaliGemma shape for
benchmarks where the backbone's real cost matters.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

log = logging.getLogger(__name__)

VlmKind = Literal["paligemma", "smolvlm"]
KINDS: tuple[str, ...] = ("paligemma", "smolvlm")

# SigLIP's normalisation, used by both PaliGemma and SmolVLM processors: pixels in [-1, 1].
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TinyVlmSizes:
    """Shape of a built model. Defaults: a tiny (<1M params) model that runs in milliseconds."""

    image_size: int = 32  # px, square; the vision tower's native size
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 1
    head_dim: int = 16
    text_intermediate: int = 128
    # Rows of the token embedding. 0: the trained tokenizer's size rounded up to a multiple of 64;
    # larger values add unused rows (as real checkpoints do) to reach a parameter budget.
    vocab_size: int = 0
    tokenizer_vocab: int = 400  # BPE target; the small built-in corpus may yield fewer merges
    scale_factor: int = 2  # smolvlm only: pixel-shuffle factor of the connector
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if self.vision_hidden % self.vision_heads:
            raise ValueError(
                f"vision_hidden={self.vision_hidden} must be divisible by vision_heads={self.vision_heads}"
            )
        if self.text_heads % self.text_kv_heads:
            raise ValueError(
                f"text_heads={self.text_heads} must be a multiple of text_kv_heads={self.text_kv_heads}"
            )


# An ~86M-parameter PaliGemma shape (SigLIP 6x384, Gemma 11x640): big enough that the frozen
# backbone dominates an action-expert step, as in STACK.md's table. Pass image_size=96 or 224.
PALIGEMMA_BENCH_SIZES: dict[str, int] = {
    "patch_size": 16,
    "vision_hidden": 384,
    "vision_layers": 6,
    "vision_heads": 6,
    "vision_intermediate": 1536,
    "text_hidden": 640,
    "text_layers": 11,
    "text_heads": 8,
    "text_kv_heads": 1,
    "head_dim": 80,
    "text_intermediate": 2560,
    "vocab_size": 16384,
}

_VERBS = (
    "pick up",
    "put",
    "place",
    "push",
    "pull",
    "open",
    "close",
    "move",
    "stack",
    "lift",
    "turn",
    "slide",
)
_COLORS = ("red", "green", "blue", "yellow", "black", "white", "orange", "purple")
_OBJECTS = ("block", "cube", "bowl", "cup", "drawer", "door", "button", "sponge", "bottle", "lid", "plate")
_PLACES = (
    "in the bowl",
    "on the plate",
    "to the left",
    "to the right",
    "on top of the tower",
    "into the box",
)


def instruction_corpus() -> list[str]:
    """Robot-instruction sentences the tiny tokenizers are trained on (plus all printable ASCII)."""
    lines = [f"{v} the {c} {o} {p}" for v, c, o, p in itertools.product(_VERBS, _COLORS, _OBJECTS, _PLACES)]
    # Every printable ASCII character once, so each is a token of its own (not only a byte).
    lines.append("".join(chr(i) for i in range(32, 127)))
    return lines


def build_tiny_vlm(kind: VlmKind, out_dir: str | Path, **size_overrides: int) -> Path:
    """Build a random-weight VLM, save model + tokenizer + image-processor config to ``out_dir``.

    Args:
        kind: "paligemma" (SigLIP + Gemma, PaliGemmaForConditionalGeneration) or
            "smolvlm" (SigLIP-style vision + pixel-shuffle connector + Llama, SmolVLMForConditionalGeneration).
        out_dir: directory to write; created if missing.
        **size_overrides: fields of :class:`TinyVlmSizes` (e.g. ``image_size=224``,
            or ``**PALIGEMMA_BENCH_SIZES``).

    Returns:
        ``out_dir`` as a Path, loadable with ``from_pretrained`` offline.

    Raises:
        ValueError: an unknown kind or size name, or inconsistent sizes.
    """
    if kind not in KINDS:
        raise ValueError(f"build_tiny_vlm: kind={kind!r} is not one of {list(KINDS)}")
    fields = {f.name for f in dataclasses.fields(TinyVlmSizes)}
    for name in size_overrides:
        if name not in fields:
            near = difflib.get_close_matches(name, fields, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"build_tiny_vlm: unknown size {name!r}{hint} (known: {sorted(fields)})")
    sizes = TinyVlmSizes(**size_overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _train_tokenizer(kind, sizes.tokenizer_vocab)
    n_tok = len(tokenizer)
    vocab = sizes.vocab_size or -(-n_tok // 64) * 64
    if vocab < n_tok:
        raise ValueError(f"build_tiny_vlm: vocab_size={vocab} is smaller than the tokenizer's {n_tok} tokens")

    config = (
        _paligemma_config(sizes, tokenizer, vocab)
        if kind == "paligemma"
        else _smolvlm_config(sizes, tokenizer, vocab)
    )

    from transformers import AutoModelForImageTextToText

    # Seeded without touching the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sizes.seed)
        model = AutoModelForImageTextToText.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _image_processor(kind, sizes).save_pretrained(out)
    log.info("built %s-shaped model with %.2fM params in %s", kind, n_params / 1e6, out)
    return out


def _paligemma_config(sizes: TinyVlmSizes, tokenizer, vocab: int):
    from transformers import GemmaConfig, PaliGemmaConfig, SiglipVisionConfig

    vision = SiglipVisionConfig(
        hidden_size=sizes.vision_hidden,
        intermediate_size=sizes.vision_intermediate,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
        vision_use_head=False,  # PaliGemma reads the patch tokens; SigLIP's pooling head is unused
    )
    text = GemmaConfig(
        vocab_size=vocab,
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_intermediate,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        num_key_value_heads=sizes.text_kv_heads,
        head_dim=sizes.head_dim,  # Gemma's default is 256: far too wide for a tiny model
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=vocab,
        projection_dim=sizes.text_hidden,
        hidden_size=sizes.text_hidden,
    )


def _smolvlm_config(sizes: TinyVlmSizes, tokenizer, vocab: int):
    from transformers import LlamaConfig, SmolVLMConfig
    from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig

    if (sizes.image_size // sizes.patch_size) % sizes.scale_factor:
        raise ValueError(
            f"smolvlm: patches per side {sizes.image_size // sizes.patch_size} must be a multiple of "
            f"scale_factor={sizes.scale_factor} (the connector's pixel shuffle)"
        )
    vision = SmolVLMVisionConfig(
        hidden_size=sizes.vision_hidden,
        intermediate_size=sizes.vision_intermediate,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
    )
    text = LlamaConfig(
        vocab_size=vocab,
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_intermediate,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        num_key_value_heads=sizes.text_kv_heads,
        head_dim=sizes.head_dim,
        rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return SmolVLMConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=sizes.scale_factor,
        pad_token_id=tokenizer.pad_token_id,
        # Tied, so the saved checkpoint has no separate lm_head for the LM-head-less backbone to drop.
        tie_word_embeddings=True,
    )


def _train_tokenizer(kind: VlmKind, target_vocab: int):
    """A BPE tokenizer trained on :func:`instruction_corpus`, never producing unknown tokens.

    PaliGemma: a ``GemmaTokenizer`` (SentencePiece-style BPE with byte fallback, adds no BOS here);
    the 256 byte tokens are added so any UTF-8 text encodes. SmolVLM: a byte-level BPE
    (GPT-2 style, like SmolVLM's own) wrapped in ``PreTrainedTokenizerFast``.
    """
    corpus = instruction_corpus()
    if kind == "paligemma":
        from transformers import GemmaTokenizer

        trained = GemmaTokenizer().train_new_from_iterator(corpus, vocab_size=target_vocab)
        model = json.loads(trained.backend_tokenizer.to_str())["model"]
        vocab = dict(model["vocab"])
        for b in range(256):  # byte fallback needs <0xNN> tokens to exist
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
        tok = GemmaTokenizer(vocab=vocab, merges=[tuple(m) for m in model["merges"]])
        tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
        return tok

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=target_vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no unknown tokens
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<image>", "<fake_token_around_image>"],
    )


def _image_processor(kind: VlmKind, sizes: TinyVlmSizes):
    # The PIL image processors: the default (fast) ones need torchvision, which does not
    # install beside torch 2.13 (STACK.md).
    if kind == "paligemma":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        return SiglipImageProcessorPil(
            size={"height": sizes.image_size, "width": sizes.image_size},
            image_mean=list(SIGLIP_MEAN),
            image_std=list(SIGLIP_STD),
        )
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    return SmolVLMImageProcessorPil(
        size={"longest_edge": sizes.image_size},
        max_image_size={"longest_edge": sizes.image_size},
        do_image_splitting=False,
        image_mean=list(SIGLIP_MEAN),
        image_std=list(SIGLIP_STD),
    )
