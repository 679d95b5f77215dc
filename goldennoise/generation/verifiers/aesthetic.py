"""The LAION aesthetic predictor (improved-aesthetic-predictor, "sac+logos+ava1-l14-linearMSE").

An MLP (five linear layers, no activations, as published) on the L2-normalised
image embedding of openai/CLIP ViT-L/14; the prompt is not used. The CLIP tower is
transformers' `CLIPVisionModelWithProjection`, taken from the `CLIPModel` `openai/clip-vit-large-patch14`
(the port of the weights `clip.load("ViT-L/14")` gives), with its processor, which
is openai/CLIP's preprocessing. The MLP's file lives in the author's GitHub
repository; the loader takes the copy on the hub at `camenduru/improved-aesthetic-predictor`
and checks it against the original's sha256. Scores are on AVA's 1-10 scale.
"""

from __future__ import annotations

import torch

from goldennoise.generation.verifiers.base import (Verifier, check_mapping, clip_pixels, errors_only, folder_or_none,
                                                   hub_file, load_error, mlp_head, read_checkpoint, revision_of)

CLIP = "openai/clip-vit-large-patch14"
HEAD_REPO, HEAD_FILE = "camenduru/improved-aesthetic-predictor", "sac+logos+ava1-l14-linearMSE.pth"
HEAD_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"  # the GitHub original's
VERSION = "1"
DEFINITION = "improved-aesthetic-predictor MLP on the L2-normalised CLIP ViT-L/14 image embedding (1-10 scale)"


def from_predictor(state: dict) -> tuple[dict, list[str]]:
    """The predictor's state dict (`layers.N.*`) -> (the `mlp_head` Sequential's state, keys not used)."""
    head = {k.removeprefix("layers."): v for k, v in state.items() if k.startswith("layers.")}
    return head, [k for k in state if not k.startswith("layers.")]


class Aesthetic(Verifier):
    name = "aesthetic"
    version = VERSION
    definition = DEFINITION

    def __init__(self, vision, processor, head, model_id: str, revision: str | None, device: str,
                 dtype: torch.dtype):
        self.vision, self.processor, self.head = vision, processor, head
        self.model_id, self.revision, self.device, self.dtype = model_id, revision, device, dtype

    def pixels(self, images) -> torch.Tensor:
        return clip_pixels(images, self.processor, self.device).to(self.dtype)

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        embeds = self.vision(pixel_values=pixels).image_embeds.float()  # (N, 768): encode_image's output
        embeds = embeds / embeds.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # the predictor's `normalized`
        return self.head(embeds).squeeze(1)


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
         model_id: str | None = None) -> Aesthetic:
    """The predictor from the hub (`source=None`) or a folder holding the CLIP vision tower and the MLP file."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPVisionModelWithProjection

    folder = folder_or_none(source)
    clip_source = source if folder is not None else CLIP
    needs = [clip_source, f"{HEAD_REPO} {HEAD_FILE}"]
    head_path = folder / HEAD_FILE if folder is not None else hub_file("aesthetic", HEAD_REPO, HEAD_FILE, needs,
                                                                         HEAD_SHA256)
    try:
        # The repository holds a whole CLIPModel: take its vision tower and projection, with the projection size
        # from the top-level config (the vision sub-config's default would be 512, not 768).
        config = CLIPConfig.from_pretrained(clip_source)
        config.vision_config.projection_dim = config.projection_dim
        with errors_only():  # the unused text tower would be listed as "unexpected" keys
            vision = CLIPVisionModelWithProjection.from_pretrained(clip_source, config=config.vision_config,
                                                                   dtype=dtype).eval().to(device)
        processor = CLIPImageProcessor.from_pretrained(clip_source)
    except Exception as error:
        raise load_error("aesthetic", needs, error) from error
    head = mlp_head(vision.config.projection_dim)
    state, unused = from_predictor(read_checkpoint("aesthetic", head_path))
    check_mapping("aesthetic", state, {k: v.shape for k, v in head.state_dict().items()}, unused)
    head.load_state_dict({k: v.float() for k, v in state.items()})
    name = model_id or (source if folder is not None else f"{CLIP} + {HEAD_REPO}/{HEAD_FILE}")
    return Aesthetic(vision, processor, head.to(device), name, revision_of(clip_source), device, dtype)
