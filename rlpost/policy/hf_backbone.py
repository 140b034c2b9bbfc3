"""A transformers vision-language model (PaliGemma, SmolVLM/Idefics3) as the VLA's backbone.

Like pi0 with PaliGemma: every camera image goes through the vision tower and
projector on its own, giving that camera's image tokens; the instruction is
tokenized and embedded with the language model's own input embeddings; the
sequence ``[cam_1 tokens, ..., cam_C tokens, text tokens]`` runs through the
language model with **bidirectional** attention over the whole prefix (PaliGemma's
prefix-LM, as pi0 uses it), text padding masked out. The last layer's hidden states
(final norm applied) are the prefix.

Images are resized with torch (bilinear, antialiased) to the vision tower's size,
rescaled and normalised with the mean/std of the checkpoint's
``preprocessor_config.json`` (SigLIP's 0.5/0.5 when the checkpoint has none,
logged). Processor-side extras are not reproduced: no image splitting into tiles
(SmolVLM), no ``<fake_token_around_image>`` wrappers or chat template.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rlpost.policy.backbone import Backbone, Prefix, dataclass_dict
from rlpost.policy.config import HFBackboneConfig

log = logging.getLogger(__name__)

Family = Literal["paligemma", "idefics3", "smolvlm"]
FAMILIES: tuple[str, ...] = ("paligemma", "idefics3", "smolvlm")

# SigLIP's normalisation (pixels to [-1, 1]); PaliGemma's and SmolVLM's processors both use it.
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
PROCESSOR_FILE = "preprocessor_config.json"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFBackbone(Backbone):
    """A transformers VLM mapping camera images + instruction to a prefix of hidden states.

    Prefix layout: ``C * n_img`` image tokens (cameras in ``cameras`` order), then
    ``cfg.max_text_len`` text tokens (right-padded; padding is ``mask == False`` and its
    tokens are zeros). ``P = C * n_img + max_text_len`` is the same for every batch.

    Args:
        cfg: which model (local directory or hub id), text length, image size, dtype.
        cameras: camera names, in the order their tokens appear.
        assets_dir: build from the config and tokenizer saved here by :meth:`save_assets`,
            with random weights (for loading a checkpoint's weights over it); use
            :meth:`from_assets`. None: load ``cfg.model`` with its pretrained weights.

    Raises:
        ValueError: a model family other than those in ``FAMILIES``, no cameras, or an
            image size the vision tower cannot take.
    """

    def __init__(
        self, cfg: HFBackboneConfig, cameras: tuple[str, ...], *, assets_dir: str | Path | None = None
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        cameras = tuple(cameras)
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"HFBackbone: cameras={list(cameras)} must be non-empty and unique")
        if cfg.dtype not in _DTYPES:
            raise ValueError(f"HFBackbone: dtype={cfg.dtype!r} is not one of {list(_DTYPES)}")
        if cfg.max_text_len < 1:
            raise ValueError(f"HFBackbone: max_text_len={cfg.max_text_len} must be >= 1")
        self.cfg = cfg
        self.cameras = cameras
        source = str(assets_dir) if assets_dir is not None else cfg.model
        if not source:
            raise ValueError("HFBackbone: cfg.model is empty; give a local directory or hub id")

        # Read the config first: an unsupported family fails before any weights are read.
        config = AutoConfig.from_pretrained(source)
        self.family: Family = _check_family(config.model_type, source)
        dtype = _DTYPES[cfg.dtype]
        # AutoModel gives the base model (vision tower + projector + language model) without
        # the LM head, which a backbone never uses; hub checkpoints of the *ForConditionalGeneration
        # class load into it (their unused lm_head is reported and dropped).
        # SDPA in both constructors so that loaded and rebuilt models compute identically.
        if assets_dir is None:
            model = AutoModel.from_pretrained(source, dtype=dtype, attn_implementation="sdpa")
        else:
            model = AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa")
        model.eval()
        self.model = model
        self.tokenizer = AutoTokenizer.from_pretrained(source)

        # The model's own config: it carries the attention implementation the masks are built for.
        self._text_config = model.config.get_text_config()
        self.width: int = self._text_config.hidden_size

        vision = config.vision_config
        self.image_size = cfg.image_size or int(vision.image_size)
        patches = self.image_size // vision.patch_size
        if self.image_size % vision.patch_size:
            raise ValueError(
                f"HFBackbone: image_size={self.image_size} must be a multiple of the vision patch size "
                f"{vision.patch_size} ({source})"
            )
        if self.family == "paligemma":
            self.tokens_per_image = patches**2
        else:
            if patches % config.scale_factor:
                raise ValueError(
                    f"HFBackbone: image_size={self.image_size} gives {patches} patches per side, not a "
                    f"multiple of the connector's pixel-shuffle factor {config.scale_factor} ({source})"
                )
            self.tokens_per_image = (patches // config.scale_factor) ** 2
        # SigLIP's learned position embeddings are for the native size only: interpolate otherwise.
        # (Idefics3/SmolVLM's vision embeddings place patches by fractional coordinates at any size.)
        self._interpolate_pos = self.family == "paligemma" and self.image_size != int(vision.image_size)
        # PaliGemma counts positions from 1 (PaliGemmaModel.forward); Llama-based ones from 0.
        self._position_offset = 1 if self.family == "paligemma" else 0
        # An ids value for padding slots; masked out everywhere, so only its validity matters.
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else 0)

        self._processor, self.norm_source = _load_processor_dict(source)
        mean = self._processor.get("image_mean", SIGLIP_MEAN)
        std = self._processor.get("image_std", SIGLIP_STD)
        if self._processor.get("do_normalize") is False:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        rescale = float(self._processor.get("rescale_factor", 1 / 255))
        if "image_mean" not in self._processor:
            log.warning("HFBackbone: %s has no image_mean/std; using SigLIP's 0.5/0.5", source)
            self.norm_source = f"SigLIP default 0.5/0.5 (none in {source})"
        self.image_mean = [float(m) for m in mean]
        self.image_std = [float(s) for s in std]
        self.rescale_factor = rescale
        # Non-persistent: the state dict stays exactly the transformers model's weights.
        self.register_buffer("_mean", torch.tensor(self.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.image_std).view(1, 3, 1, 1), persistent=False)
        log.info(
            "HFBackbone %s from %s: D=%d, %d px, %d tokens/camera, normalisation from %s",
            self.family,
            source,
            self.width,
            self.image_size,
            self.tokens_per_image,
            self.norm_source,
        )

    # -- construction from a checkpoint ----------------------------------------------------------
    @classmethod
    def from_assets(
        cls, directory: str | Path, cfg: HFBackboneConfig, cameras: tuple[str, ...]
    ) -> HFBackbone:
        """Rebuild the architecture and tokenizer saved by :meth:`save_assets`, with random weights.

        Args:
            directory: what :meth:`save_assets` wrote.
            cfg: the backbone config saved with the checkpoint (``cfg.model`` is not read).
            cameras: camera names, in prefix order.

        Returns:
            A backbone whose ``load_state_dict`` takes the checkpoint's backbone weights.
        """
        return cls(cfg, cameras, assets_dir=directory)

    def save_assets(self, directory: str | Path) -> None:
        """Write the model config, tokenizer and image-processor config (no weights) to ``directory``.

        The VLA checkpoint stores every weight in one safetensors file; these files are what
        :meth:`from_assets` needs to rebuild the modules the weights load into.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        # The effective normalisation, so a rebuilt backbone normalises exactly as this one.
        proc = dict(self._processor)
        proc.update(image_mean=self.image_mean, image_std=self.image_std, rescale_factor=self.rescale_factor)
        (out / PROCESSOR_FILE).write_text(json.dumps(proc, indent=2, sort_keys=True))

    def config_dict(self) -> dict:
        """``cfg`` fields plus cameras, family and normalisation (JSON-able; keys the fingerprint)."""
        return {
            **dataclass_dict(self.cfg),
            "cameras": list(self.cameras),
            "family": self.family,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
        }

    # -- the prefix --------------------------------------------------------------------------------
    @property
    def prefix_len(self) -> int:
        """P: image tokens of all cameras plus the padded text length."""
        return len(self.cameras) * self.tokens_per_image + self.cfg.max_text_len

    def embed(self, images: dict[str, Tensor], instructions: list[str]) -> Prefix:
        """Args:
            images: camera -> uint8 [B, h, w, 3], any h, w (resized here); exactly ``cameras``.
            instructions: B strings, each at most ``cfg.max_text_len`` tokens.

        Returns:
            The prefix: tokens float32 [B, P, D], mask bool [B, P] (False on text padding).

        Raises:
            ValueError: missing/extra cameras, a wrong image dtype or shape (naming the camera),
                a batch-size mismatch, or an instruction longer than ``max_text_len`` tokens.
        """
        batch = self._check_images(images)
        device = self._mean.device
        dtype = next(self.model.parameters()).dtype

        pixels = torch.stack([self._pixels(images[cam].to(device)) for cam in self.cameras], dim=1)
        img = self._image_features(pixels.flatten(0, 1).to(dtype))  # [B*C, n_img, D]
        img = img.reshape(batch, len(self.cameras) * self.tokens_per_image, self.width)

        ids, text_mask = self._tokenize(instructions, batch)
        # The LM's own embedding module: Gemma's scales by sqrt(hidden) inside it.
        text = self.model.get_input_embeddings()(ids.to(device))
        embeds = torch.cat([img.to(text.dtype), text], dim=1)
        mask = torch.cat([torch.ones(img.shape[:2], dtype=torch.bool), text_mask], dim=1).to(device)

        hidden = self._run_language_model(embeds, mask)
        # Zero the padding rows: nothing downstream should read them, and cached features
        # then hold no leftovers.
        tokens = hidden.float() * mask[..., None]
        return Prefix(tokens, mask)

    def _check_images(self, images: dict[str, Tensor]) -> int:
        if set(images) != set(self.cameras):
            raise ValueError(f"HFBackbone: got cameras {sorted(images)}, expected {list(self.cameras)}")
        batch = None
        for cam in self.cameras:
            x = images[cam]
            if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
                what = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"HFBackbone: camera {cam!r} image is {what}, expected uint8 [B, h, w, 3]")
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(
                    f"HFBackbone: camera {cam!r} has batch {x.shape[0]}, camera {self.cameras[0]!r} has {batch}"
                )
        assert batch is not None
        return batch

    def _pixels(self, x: Tensor) -> Tensor:
        """uint8 [B, h, w, 3] -> normalised float32 [B, 3, s, s]."""
        x = x.permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            # Antialias so a downscale averages (as the PIL processors do) instead of aliasing.
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return (x * self.rescale_factor - self._mean) / self._std

    def _image_features(self, pixels: Tensor) -> Tensor:
        """Normalised [N, 3, s, s] -> image tokens [N, n_img, D] in the LM's space."""
        if self.family == "paligemma":
            out = self.model.get_image_features(pixels, interpolate_pos_encoding=self._interpolate_pos)
            return out.pooler_output
        # Idefics3/SmolVLM: vision encoder + pixel-shuffle connector, as get_image_features does,
        # minus its batch-padding logic, which would silently drop an image whose normalised
        # pixels are all exactly 0.
        n, _, h, w = pixels.shape
        p = self.model.config.vision_config.patch_size
        patch_mask = torch.ones((n, h // p, w // p), dtype=torch.bool, device=pixels.device)
        hidden = self.model.vision_model(
            pixel_values=pixels, patch_attention_mask=patch_mask
        ).last_hidden_state
        return self.model.connector(hidden)

    def _tokenize(self, instructions: list[str], batch: int) -> tuple[Tensor, Tensor]:
        if not isinstance(instructions, (list, tuple)) or not all(isinstance(s, str) for s in instructions):
            raise ValueError("HFBackbone: instructions must be a list of strings")
        if len(instructions) != batch:
            raise ValueError(f"HFBackbone: {len(instructions)} instructions for a batch of {batch} images")
        # PaliGemma's processor (and pi0) end the prompt with "\n", its prefix/answer separator.
        texts = [s + "\n" for s in instructions] if self.family == "paligemma" else list(instructions)
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        limit = self.cfg.max_text_len
        ids = torch.full((batch, limit), self._pad_id, dtype=torch.long)
        mask = torch.zeros((batch, limit), dtype=torch.bool)
        for i, seq in enumerate(encoded):
            if len(seq) > limit:
                raise ValueError(
                    f"HFBackbone: instruction {i} ({instructions[i][:60]!r}) is {len(seq)} tokens, "
                    f"more than max_text_len={limit}; raise max_text_len (it is never truncated)"
                )
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[i, : len(seq)] = True
        return ids, mask

    def _run_language_model(self, embeds: Tensor, mask: Tensor) -> Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        # A 4-D mask in the form this attention implementation wants: every real token sees
        # every real token (prefix-LM), padding keys hidden. Never skipped: with no mask, SDPA
        # falls back to the module's causal flag (Llama is causal).
        attn = create_bidirectional_mask(
            config=self._text_config,
            inputs_embeds=embeds,
            attention_mask=mask,
            allow_is_bidirectional_skip=False,
        )
        if attn is None:
            raise RuntimeError(
                f"HFBackbone: transformers built no attention mask for attn_implementation="
                f"{self._text_config._attn_implementation!r}; the prefix would be attended causally"
            )
        layer_types = getattr(self._text_config, "layer_types", None)
        if layer_types and getattr(self._text_config, "sliding_window", None):
            # Gemma2-style models take one mask per layer type. A bidirectional mask ignores the
            # window, which is exact only while the prefix fits inside it.
            if embeds.shape[1] > self._text_config.sliding_window:
                raise ValueError(
                    f"HFBackbone: prefix of {embeds.shape[1]} tokens exceeds the sliding window "
                    f"{self._text_config.sliding_window}"
                )
            attn = dict.fromkeys(set(layer_types), attn)
        positions = torch.arange(embeds.shape[1], device=embeds.device)[None] + self._position_offset
        lm = self.model.language_model if self.family == "paligemma" else self.model.text_model
        out = lm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions, use_cache=False)
        return out.last_hidden_state

    def extra_repr(self) -> str:
        return f"family={self.family}, cameras={list(self.cameras)}, width={self.width}, P={self.prefix_len}"


def _check_family(model_type: str, source: str) -> Family:
    if model_type not in FAMILIES:
        raise ValueError(
            f"HFBackbone: {source} is a {model_type!r} model; supported families: {list(FAMILIES)}"
        )
    return model_type  # type: ignore[return-value]


def _load_processor_dict(source: str) -> tuple[dict[str, Any], str]:
    """The checkpoint's image-processor config (local directory or hub cache) and where it came from.

    Returns an empty dict when the checkpoint has none (the caller logs the default it uses).
    """
    from transformers.utils import cached_file

    path = cached_file(
        source,
        PROCESSOR_FILE,
        _raise_exceptions_for_missing_entries=False,
    )
    if path is None:
        return {}, ""
    return json.loads(Path(path).read_text()), str(path)
