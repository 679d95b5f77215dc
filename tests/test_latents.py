"""Noise provenance against the outside oracle: diffusers' own `prepare_latents`, spied on.

For tiny FLUX and tiny SD pipelines, in float32 and bfloat16 and under several
schedulers, the recorded hashes must equal the tensor the pipeline really started
from, and the images must equal the pipeline's own generator path. For the real
FLUX.1 / FLUX.2 / SD3.5 / SDXL layouts at 1024², the real `prepare_latents` is run
on a stand-in pipeline (shapes and schedulers only, no weights).
"""

from __future__ import annotations

import types

import pytest
import torch

from goldennoise.errors import NoiseMismatch, UnsupportedPipeline, UserError
from goldennoise.generation import latents, models, pipeline
from goldennoise.generation.pipeline import GenerationParams

SEEDS = [7, 2**40 + 3, 123456789]


@pytest.fixture(scope="module")
def tiny_pipes():
    """tiny-flux and tiny-sd in float32 and bfloat16, loaded once."""
    return {(name, dtype): models.load_model(name, dtype=dtype)
            for name in ("tiny-flux", "tiny-sd") for dtype in ("float32", "bfloat16")}


def spy(pipe):
    """Wrap pipe.prepare_latents; returns the list of tensors it returned."""
    seen = []
    original = pipe.prepare_latents

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append((out[0] if isinstance(out, tuple) else out).detach().clone())
        return out

    pipe.prepare_latents = wrapper
    return seen, lambda: setattr(pipe, "prepare_latents", original)


CASES = [("tiny-flux", "float32", None), ("tiny-flux", "bfloat16", None),
         ("tiny-sd", "float32", None), ("tiny-sd", "bfloat16", None),
         ("tiny-sd", "float32", "EulerAncestralDiscreteScheduler"), ("tiny-sd", "bfloat16", "DDIMScheduler"),
         ("tiny-sd", "float32", "DPMSolverMultistepScheduler")]


@pytest.mark.parametrize("name,dtype,scheduler", CASES)
def test_recorded_latents_are_what_the_pipeline_started_from(tiny_pipes, name, dtype, scheduler):
    model = tiny_pipes[(name, dtype)]
    params = GenerationParams(4, 0.0 if name == "tiny-flux" else 5.0, 64, 64, scheduler=scheduler)
    view = models.with_scheduler(model.pipe, scheduler)
    model_view = models.LoadedModel(**{**model.__dict__, "pipe": view})
    seen, restore = spy(view)
    try:
        made = pipeline.generate(model_view, "a lighthouse", SEEDS, params)
        # The generator path: the pipeline draws its own noise from the same CPU generators.
        kwargs = dict(prompt=["a lighthouse"] * len(SEEDS), num_inference_steps=4, height=64, width=64,
                      guidance_scale=params.guidance_scale, output_type="pt",
                      generator=[torch.Generator("cpu").manual_seed(s) for s in SEEDS])
        with torch.inference_mode():
            reference = view(**kwargs).images
    finally:
        restore()
    ours, theirs = seen
    assert str(ours.dtype).endswith(dtype)
    for i, block in enumerate(made.noise):
        assert block["latents_sha256"] == latents.tensor_sha256(ours[i:i + 1])
        assert block["pipeline_dtype"] == dtype
        remade = latents.remake_latents(SEEDS[i], block)
        assert torch.equal(remade, ours[i:i + 1])
    # torch >= 2.x on CPU: a bf16 draw equals the float32 draw cast, so both paths start alike...
    assert torch.equal(ours, theirs)
    # ...and give the same images (ancestral schedulers included: generators continue alike).
    assert torch.equal(made.images, reference)


def test_sd_scale_is_applied_in_the_pipeline_dtype(tiny_pipes):
    model = tiny_pipes[("tiny-sd", "bfloat16")]
    block = pipeline.generate(model, "x", [5], GenerationParams(4, 5.0, 64, 64)).noise[0]
    assert block["family"] == "sd" and block["scale"] > 1
    draw = latents.initial_noise(5, tuple(block["shape"]))
    right = draw.to(torch.bfloat16) * block["scale"]  # bf16(bf16(x) * sigma): what the pipeline does
    wrong = (draw * block["scale"]).to(torch.bfloat16)  # bf16(x * sigma): what a naive record would claim
    assert latents.tensor_sha256(right) == block["latents_sha256"]
    assert latents.tensor_sha256(wrong) != block["latents_sha256"]


def test_a_changed_seed_or_shape_fails_verification(tiny_pipes):
    block = pipeline.generate(tiny_pipes[("tiny-flux", "float32")], "x", [11], GenerationParams(4, 0.0, 64, 64)).noise[0]
    assert latents.verify(11, block).status == "exact"
    with pytest.raises(NoiseMismatch):
        latents.verify(12, block)
    with pytest.raises(NoiseMismatch):
        latents.verify(11, {**block, "shape": [1, 4, 4, 16]})  # same numel, other layout


def test_unknown_pipeline_family_is_refused():
    class SomePipeline:
        vae_scale_factor = 8

    with pytest.raises(UnsupportedPipeline, match="SomePipeline is not one of them"):
        latents.layout(SomePipeline(), 1024, 1024)


def _stand_in(cls, in_channels, scheduler, unet=False, f=8):
    """An object named like `cls` carrying what its `prepare_latents` reads: config shapes and a scheduler."""
    attrs = {name: staticmethod(getattr(cls, name))
             for name in ("_pack_latents", "_prepare_latent_image_ids", "_prepare_latent_ids") if hasattr(cls, name)}
    stand = type(cls.__name__, (), attrs)()
    stand.vae_scale_factor, stand.scheduler = f, scheduler
    config = types.SimpleNamespace(config=types.SimpleNamespace(in_channels=in_channels))
    setattr(stand, "unet" if unet else "transformer", config)
    return stand


REAL = [  # (pipeline class, transformer/unet in_channels, scheduler, unet?, call args for prepare_latents)
    ("FluxPipeline", 64, "FlowMatchEulerDiscreteScheduler", False, "flux1"),  # FLUX.1-schnell and -dev
    ("Flux2Pipeline", 128, "FlowMatchEulerDiscreteScheduler", False, "flux2"),
    ("StableDiffusion3Pipeline", 16, "FlowMatchEulerDiscreteScheduler", False, "sd3"),  # SD3.5
    ("StableDiffusionXLPipeline", 4, "EulerDiscreteScheduler", True, "sd"),  # SDXL
]


@pytest.mark.parametrize("class_name,in_channels,scheduler_name,unet,family", REAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_real_layouts_at_1024(class_name, in_channels, scheduler_name, unet, family, dtype):
    import diffusers

    cls = getattr(diffusers, class_name)
    scheduler = getattr(diffusers, scheduler_name)()
    if scheduler_name == "EulerDiscreteScheduler":  # SDXL's published scheduler config
        scheduler = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                     steps_offset=1, timestep_spacing="leading")
    stand = _stand_in(cls, in_channels, scheduler, unet)
    lay = latents.layout(stand, 1024, 1024, 30)
    assert lay.family == family
    seed = 42
    draw = latents.initial_noise(seed, lay.draw_shape)
    block = latents.provenance(seed, draw, lay, dtype)
    passed = latents.to_passed(draw, family, dtype)
    channels = in_channels // 4 if family in ("flux1", "flux2") else in_channels
    scheduler.set_timesteps(30)
    args = dict(batch_size=1, num_channels_latents=channels, height=1024, width=1024, dtype=dtype,
                device=torch.device("cpu"), generator=torch.Generator("cpu").manual_seed(seed))
    if family == "flux2":
        args["num_latents_channels"] = args.pop("num_channels_latents")
    oracle = cls.prepare_latents(stand, **args)  # the generator path
    given = cls.prepare_latents(stand, **{**args, "latents": passed})  # what we pass
    oracle, given = [t[0] if isinstance(t, tuple) else t for t in (oracle, given)]
    assert torch.equal(oracle, given)
    assert latents.tensor_sha256(given) == block["latents_sha256"]
    assert list(given.shape) == block["latents_shape"]
    expected_draw = {"flux1": (1, 16, 128, 128), "flux2": (1, 128, 64, 64), "sd3": (1, 16, 128, 128),
                     "sd": (1, 4, 128, 128)}[family]
    assert tuple(block["shape"]) == expected_draw


@pytest.fixture(scope="module")
def digits_pipes():
    """The trained digits model (pixel family) in float32 and bfloat16."""
    return {dtype: models.load_model("digits", dtype=dtype) for dtype in ("float32", "bfloat16")}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_pixel_family_records_what_the_digits_pipeline_started_from(digits_pipes, dtype):
    from goldennoise.store import schema

    model = digits_pipes[dtype]
    params = GenerationParams(4, 0.75, 64, 64)
    seen, restore = spy(model.pipe)
    try:
        made = pipeline.generate(model, "a handwritten 4", SEEDS, params)
        with torch.inference_mode():  # the generator path: the pipeline draws its own noise
            reference = model.pipe(prompt=["a handwritten 4"] * len(SEEDS), num_inference_steps=4, guidance_scale=0.75,
                                   height=64, width=64, output_type="pt",
                                   generator=[torch.Generator("cpu").manual_seed(s) for s in SEEDS]).images
    finally:
        restore()
    ours, theirs = seen
    assert ours.shape == (3, 1, 8, 8) and str(ours.dtype).endswith(dtype)
    for i, block in enumerate(made.noise):
        assert (block["family"], block["packing"], block["scale"], block["shape"]) == ("pixel", "none", 1.0, [1, 1, 8, 8])
        assert block["latents_sha256"] == latents.tensor_sha256(ours[i:i + 1])
        assert torch.equal(latents.remake_latents(SEEDS[i], block), ours[i:i + 1])
        assert torch.equal(latents.remake_latents(SEEDS[i], block, stage="passed"), ours[i:i + 1])
        assert latents.verify(SEEDS[i], block).status == "exact"
        assert schema.Noise(**block).family == "pixel"  # the record schema takes the block as it is
    assert torch.equal(ours, theirs)
    assert torch.equal(made.images, reference)


def test_pixel_draw_ignores_the_image_size_and_a_changed_seed_fails(digits_pipes):
    model = digits_pipes["float32"]
    small = pipeline.generate(model, "3", [21], GenerationParams(2, 0.75, 8, 8)).noise[0]
    large = pipeline.generate(model, "3", [21], GenerationParams(2, 0.75, 256, 128)).noise[0]
    assert small == large  # height and width only upscale the output
    assert pipeline.size_multiple(model.pipe) == 8
    with pytest.raises(UserError, match="height: must be a multiple of 8"):
        pipeline.generate(model, "3", [21], GenerationParams(2, 0.75, 12, 8))
    with pytest.raises(NoiseMismatch):
        latents.verify(22, small)
    with pytest.raises(NoiseMismatch):
        latents.verify(21, {**small, "shape": [1, 1, 4, 16]})  # same numel, other layout


@pytest.mark.parametrize("name", sorted(latents.UNIT_SIGMA_SCHEDULERS))
def test_schedulers_said_to_start_at_sigma_one_do_so_whatever_their_config(name):
    import diffusers

    for config in ({}, {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
                   {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.05, "timestep_spacing": "trailing"}):
        scheduler = getattr(diffusers, name).from_config(config)  # ignores what a class does not take
        for steps in (2, 30):
            assert latents.init_noise_sigma(scheduler, steps) == 1.0


def test_what_the_configuration_cannot_check_is_said_not_assumed(tiny_pipes):
    block = pipeline.generate(tiny_pipes[("tiny-sd", "float32")], "x", [3], GenerationParams(4, 5.0, 64, 64)).noise[0]
    folder = {"pipeline_class": "StableDiffusionPipeline", "dtype": "float32", "height": 64, "width": 64,
              "num_inference_steps": 4, "scheduler": None, "model_id": "my-local-model", "revision": None}
    unchecked = latents.verify(3, block, configuration=folder).unchecked
    assert [u.split(":")[0] for u in unchecked] == ["channels", "scale"]  # no table entry, no cached config
    with pytest.raises(NoiseMismatch, match="'shape'") as refused:  # the size is checked all the same
        latents.verify(3, block, configuration={**folder, "height": 128})
    assert refused.value.field == "shape"
    with pytest.raises(NoiseMismatch, match="'family'"):
        latents.verify(3, block, configuration={**folder, "pipeline_class": "SomeOtherPipeline"})
    with pytest.raises(NoiseMismatch, match="'scale'"):  # a known scheduler's sigma needs no config
        latents.verify(3, block, configuration={**folder, "scheduler": "DDIMScheduler"})


@pytest.mark.parametrize("name,dtype,scheduler", CASES)
def test_fresh_blocks_fit_what_their_configuration_implies(tiny_pipes, name, dtype, scheduler):
    """The implied layout (pipeline class, size, known channels, the scheduler's sigma) against what was made."""
    from goldennoise.store.configuration import configuration

    model = tiny_pipes[(name, dtype)]
    params = GenerationParams(4, 0.0 if name == "tiny-flux" else 5.0, 64, 64, scheduler=scheduler)
    view = models.LoadedModel(**{**model.__dict__, "pipe": models.with_scheduler(model.pipe, scheduler)})
    block = pipeline.generate(view, "x", [9], params).noise[0]
    result = latents.verify(9, block, configuration=configuration(model.info(), params.to_dict()))
    assert result.status == "exact" and result.unchecked == ()
