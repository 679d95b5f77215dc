"""Per-model noise provenance: the recorded noise is exactly what each pipeline starts from."""

import pytest
import torch

from goldennoise import generation, models, noise, runtime
from goldennoise.engine import Engine


@pytest.fixture(scope="module")
def tiny_sd():
    return models.load_model("tiny-sd")


@pytest.mark.parametrize("name,scheduler", [("tiny-flux", None), ("tiny-sd", None), ("tiny-sd", "DDIMScheduler"),
                                            ("tiny-sd", "DPMSolverMultistepScheduler")])
def test_recorded_noise_is_the_pipelines_initial_latents(name, scheduler, tiny_model, tiny_sd, tmp_path, monkeypatch):
    model = tiny_model if name == "tiny-flux" else tiny_sd
    captured = []
    original = type(model.pipe).prepare_latents

    def spy(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        captured.append(result[0] if isinstance(result, tuple) else result)
        return result

    monkeypatch.setattr(type(model.pipe), "prepare_latents", spy)
    engine = Engine(tmp_path)
    engine.model = model
    params = generation.GenerationParams(4, 5.0, 64, 64, 64 if name == "tiny-flux" else None, scheduler)
    try:
        batch = engine.generate_batch(name, "a lighthouse", [7, 8, 9], params, use_clip=False)
    finally:
        engine.close()
    latents = captured[0]
    for index, (seed, block) in enumerate(zip(batch.seeds, batch.noise)):
        assert torch.equal(noise.remake_noise(seed, block, packed=True), latents[index:index + 1])
    assert batch.noise[0]["packing"] == ("flux-2x2" if name == "tiny-flux" else "none")
    assert batch.parameters["runtime"]["placement"] == "cpu"


def test_model_defaults_and_schedulers(tiny_sd):
    assert tiny_sd.pipeline_class == "StableDiffusionPipeline"
    names = models.compatible_schedulers(tiny_sd.pipe)
    assert names[0] == "EulerDiscreteScheduler" and "DPMSolverMultistepScheduler" in names
    assert models.resolve("SDXL").num_inference_steps == 30 and models.resolve("tiny-sd").max_sequence_length is None


GB = 10**9
FLUX_SCHNELL = {"transformer": 23.8 * GB, "text_encoder_2": 9.5 * GB, "text_encoder": 0.25 * GB, "vae": 0.17 * GB}


@pytest.mark.parametrize("free,expected", [(79 * GB, "gpu"), (45 * GB, "gpu"), (40 * GB, "model_offload"),
                                           (25.3 * GB, "model_offload"), (16 * GB, "sequential_offload")])
def test_placement_by_free_memory(free, expected):
    # An H100 holds FLUX.1-schnell whole; a 24 GiB card (about 25.3 GB free) runs it with model offload.
    assert runtime.choose_placement(FLUX_SCHNELL, free) == expected
