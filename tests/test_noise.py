"""Noise is exact per seed: against diffusers' own prepare_latents, alone or in a batch."""

import hashlib

import numpy as np
import pytest
import torch

from goldennoise import generation, noise


@pytest.mark.parametrize("height,width", [(128, 128), (256, 128), (144, 208)])
def test_initial_noise_matches_diffusers_prepare_latents(tiny_model, height, width):
    pipe = tiny_model.pipe
    seeds = [0, 7, 2**40 + 3]
    shape, packing = noise.latent_layout(pipe, height, width)
    channels = pipe.transformer.config.in_channels // 4
    latents, _ = pipe.prepare_latents(len(seeds), channels, height, width, torch.float32, "cpu",
                                      [noise.generator(s) for s in seeds])
    ours = torch.cat([noise.pack(noise.initial_noise(s, shape), packing) for s in seeds])
    assert packing == "flux-2x2"
    assert torch.equal(latents, ours)
    assert torch.equal(noise.pack(noise.initial_noise(7, shape), packing),
                       pipe._pack_latents(noise.initial_noise(7, shape), 1, channels, shape[2], shape[3]))


def test_noise_of_a_seed_does_not_depend_on_batch_position(tiny_model):
    shape, _ = noise.latent_layout(tiny_model.pipe, 128, 128)
    alone = noise.initial_noise(5, shape)
    for batch in ([5, 6, 7], [9, 5], [5]):
        drawn = [torch.randn(shape, generator=g) for g in [noise.generator(s) for s in batch]]
        assert torch.equal(drawn[batch.index(5)], alone)


def test_sha256_verifiable_with_plain_torch(tiny_model):
    shape, packing = noise.latent_layout(tiny_model.pipe, 128, 128)
    block = noise.noise_block(1234, shape, packing, "float32")
    # What a reader without GoldenNoise would do, from the record alone:
    plain = torch.randn(block["shape"], generator=torch.Generator("cpu").manual_seed(1234), dtype=torch.float32)
    assert hashlib.sha256(plain.numpy().astype("<f4").tobytes()).hexdigest() == block["sha256"]
    assert torch.equal(noise.remake_noise(1234, block), plain)
    with pytest.raises(noise.NoiseMismatch):
        noise.remake_noise(1235, block)


def test_batch_images_match_single_images_within_one_level(tiny_model, params):
    seeds = [11, 22, 33, 44]
    def images(seed_list):
        return generation.to_pil(generation.generate(tiny_model, "a lighthouse in a storm", seed_list, params)[0])

    batch = images(seeds)
    for seed, image in zip(seeds, batch):
        single = images([seed])
        difference = np.abs(np.asarray(image, dtype=int) - np.asarray(single[0], dtype=int))
        assert difference.max() <= 1
    again = images(seeds[::-1])
    assert np.abs(np.asarray(again[-1], dtype=int) - np.asarray(batch[0], dtype=int)).max() <= 1
    other = images([55])
    assert np.abs(np.asarray(other[0], dtype=int) - np.asarray(batch[0], dtype=int)).mean() > 5


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7", True])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        noise.check_seed(seed)
