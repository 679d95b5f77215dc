"""CLIP score per image agrees with torchmetrics (the outside oracle) on the same model."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.multimodal import clip_score as torchmetrics_clip_score

from goldennoise.generation import latents, pipeline, scoring


class _FeaturesAsTensor(torch.nn.Module):
    """torchmetrics 1.9 expects tensors from get_*_features; transformers 5 returns output objects."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs):
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs).pooler_output


def test_clip_scores_agree_with_torchmetrics(tiny_model, tiny_clip, params):
    prompt = "a blue house by the sea"
    images = pipeline.to_pil(pipeline.generate(tiny_model, prompt, [1, 2, 3, 4, 5], params).images)
    ours = scoring.clip_scores(tiny_clip, images, prompt)
    wrapped = _FeaturesAsTensor(tiny_clip.model)
    for image, score in zip(images, ours):
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (3, H, W) uint8
        with torch.no_grad():
            expected = torchmetrics_clip_score(pixels, prompt, model_name_or_path=lambda: (wrapped, tiny_clip.processor))
        assert score == pytest.approx(float(expected), abs=1e-4)
    assert len(set(round(s, 3) for s in ours)) > 1  # the pinned tiny CLIP gives varying scores
    assert all(s > 0 for s in ours)


def test_scores_are_clamped_at_zero_per_image(tiny_model, tiny_clip, params):
    images = pipeline.to_pil(pipeline.generate(tiny_model, "x", [1, 2], params).images)
    cosines = scoring.clip_cosines(tiny_clip, images, "x")
    assert scoring.clip_scores(tiny_clip, images, "x") == pytest.approx([100 * max(float(c), 0) for c in cosines])


def test_tensor_path_matches_the_pil_path(tiny_model, tiny_clip, params):
    """The GPU path scores tensors without PIL; it must rank and score like the PIL path."""
    tensors = pipeline.generate(tiny_model, "a red cat", [1, 2, 3, 4, 5, 6], params).images
    from_tensors = scoring.clip_scores(tiny_clip, tensors, "a red cat")
    from_pil = scoring.clip_scores(tiny_clip, pipeline.to_pil(tensors), "a red cat")
    assert from_tensors == pytest.approx(from_pil, abs=0.5)
    assert np.argsort(from_tensors).tolist() == np.argsort(from_pil).tolist()


def test_to_pil_rounds_like_diffusers(tiny_model, params):
    tensors = pipeline.generate(tiny_model, "x", [3], params).images
    kwargs = dict(num_inference_steps=4, guidance_scale=0.0, height=128, width=128, max_sequence_length=64)
    pil = tiny_model.pipe("x", generator=latents.generator(3), output_type="pil", **kwargs).images[0]
    assert np.array_equal(np.asarray(pipeline.to_pil(tensors)[0]), np.asarray(pil))
