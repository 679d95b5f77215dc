"""Offline tiny models: a real `FluxPipeline` and a real `CLIPModel`, random weights.

No weights can be downloaded on every machine GoldenNoise runs on (CI, laptops
without a GPU), so we build the same architectures from small configs under a
fixed seed, with tokenizers made locally, and save them to a cache folder. They
are then loaded through exactly the `from_pretrained` path a real model uses.

Trade-off: the images are noise-like and the CLIP scores meaningless, but every
line of generation, scoring and record code runs as it would with FLUX.1-schnell.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from goldennoise.generation import hub

TINY_FLUX = "tiny-flux"
TINY_SD = "tiny-sd"
TINY_CLIP = "tiny-clip"
# Bump when a config below changes, so stale caches are rebuilt rather than reused.
TINY_VERSION = "2"
_BUILD_SEED = 0
_CLIP_SEED = 31


def cache_dir() -> Path:
    """Folder holding built tiny models (`GOLDENNOISE_CACHE`, else ~/.cache/goldennoise)."""
    root = os.environ.get("GOLDENNOISE_CACHE") or Path.home() / ".cache" / "goldennoise"
    return Path(root)


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by GPT-2/CLIP byte-level BPE."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


# Ids of <|startoftext|> and <|endoftext|> in that vocabulary; CLIP pools at EOS.
_BOS_ID, _EOS_ID = 512, 513
_CLIP_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    vocab_size=1000, max_position_embeddings=77,
    bos_token_id=_BOS_ID, eos_token_id=_EOS_ID, pad_token_id=_EOS_ID,
)


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    # Byte-level vocabulary: every byte alone and as word end, no merges. Enough to
    # tokenize any prompt without a download.
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    # Unigram vocab over printable ASCII, as word starts ("▁a") and continuations.
    chars = [chr(c) for c in range(33, 127)]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -3.0) for c in chars] + [(c, -4.0) for c in chars]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def build_tiny_flux():
    """Return a randomly initialised `FluxPipeline` with FLUX.1-schnell's structure."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(_BUILD_SEED)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 x vae.latent_channels: latents are packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 d_model
        pooled_projection_dim=32,  # CLIP text hidden size
        guidance_embeds=False,  # schnell is guidance-distilled
        axes_dims_rope=(4, 4, 8),  # sums to attention_head_dim
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 8, 8, 8],  # 4 levels: scale factor 8, like the real VAE
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**_CLIP_TEXT, projection_dim=32))
    text_encoder_2 = T5EncoderModel(
        T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=400, dropout_rate=0.0)
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    for module in (transformer, vae, text_encoder, text_encoder_2):
        module.eval()  # modules built from configs start in train mode (dropout)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_clip_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )


def build_tiny_sd():
    """A randomly initialised `StableDiffusionPipeline`: the UNet, unpacked-latent code path."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(_BUILD_SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 8, 8], layers_per_block=1,
        latent_channels=4, norm_num_groups=4, scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**_CLIP_TEXT))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1)
    for module in (unet, vae, text_encoder):
        module.eval()
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=_clip_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_tiny_clip():
    """Return `(CLIPModel, CLIPProcessor)` with random weights, image size 32."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    # Seed chosen so that image-text cosines are positive and vary between images:
    # with random weights many seeds give all-negative cosines, so all-zero scores.
    torch.manual_seed(_CLIP_SEED)
    config = CLIPConfig(
        text_config=_CLIP_TEXT,
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2,
        ),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=_clip_tokenizer())


def _save_clip(folder: Path) -> None:
    model, processor = build_tiny_clip()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _save_flux(folder: Path) -> None:
    build_tiny_flux().save_pretrained(folder)


def _save_sd(folder: Path) -> None:
    build_tiny_sd().save_pretrained(folder)


_BUILDERS = {TINY_FLUX: _save_flux, TINY_SD: _save_sd, TINY_CLIP: _save_clip}
PIPELINES = (TINY_FLUX, TINY_SD)


def tiny_model_path(name: str) -> Path:
    """Return the folder of tiny model `name`, building and caching it on first use."""
    if name not in _BUILDERS:
        raise KeyError(f"Unknown tiny model {name!r}; choose one of {sorted(_BUILDERS)}.")
    return cached_folder(f"{name}-v{TINY_VERSION}", _BUILDERS[name])


def cached_folder(key: str, build: Callable[[Path], None]) -> Path:
    """The folder `cache_dir() / key`, made by `build(folder)` on first use (other stand-ins use it too).

    The folder is written under a temporary name and renamed, so a concurrent or
    interrupted build never leaves a half-written model behind.
    """
    folder = cache_dir() / key
    if (folder / ".complete").exists():
        return folder
    hub.quiet_loading()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text(key)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / ".complete").exists():  # lost a race to a complete build: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
