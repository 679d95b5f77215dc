"""Generation speed, measured side by side in one run.

Run: .venv/bin/python benchmarks/generation.py [--repeats 5] [--gpu-arch auto|flux|tiny] [--compile]

CPU, tiny model (always):
  1. a batch of N seeds in one call vs N single calls (same seeds, same noise);
  2. CLIP scoring as a share of generation time, and each other verifier's offline stand-in
     (tiny-pickscore, tiny-hpsv2, tiny-imagereward, tiny-aesthetic) likewise: the stand-ins have
     the real architectures at toy sizes, so this measures the code path, not the real models' cost;
  3. display encoding per batch: PNG written once (GoldenNoise: files served by path)
     vs Gradio's default lossy WebP re-encoding of PIL images on every update.
Plain diffusers vs GoldenNoise's fast path (seconds per image, batch 4 and 16):
  plain = what a hand-written script does, one `pipe(...)` call per seed;
  fast  = GoldenNoise: one call per batch with a CPU generator per seed, tensors out,
          and (with --compile) the denoiser's repeated blocks compiled.
  --gpu-arch flux (the default where CUDA is present) builds a FLUX pipeline from the
  real FLUX.1-schnell configs with random weights in bf16 (no download) and runs it at
  1024x1024, 4 steps, 256 text tokens; it also prints the share of the GPU's bf16 peak
  reached (69.5 TFLOP per image per step). --gpu-arch tiny runs the same comparison
  with the tiny model (what happens on CPU).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.generation import hub, images, latents, models, scoring, verifiers  # noqa: E402
from goldennoise.generation import pipeline as generation  # noqa: E402

FLUX_TFLOP_PER_IMAGE_STEP = 69.5  # 1024x1024, 256 text tokens (from the count)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_section(repeats: int) -> None:
    model = models.load_model("tiny-flux", device="cpu", dtype=torch.float32)
    clip = scoring.load_clip("tiny-clip", device="cpu")
    params = generation.GenerationParams(4, 0.0, 256, 256, 256)
    prompt, seeds = "a lighthouse on a cliff in a storm", [11, 12, 13, 14]
    batched = timed(lambda: generation.generate(model, prompt, seeds, params), repeats)
    singles = timed(lambda: [generation.generate(model, prompt, [s], params) for s in seeds], repeats)
    tensors = generation.generate(model, prompt, seeds, params).images
    pil = generation.to_pil(tensors)
    clip_time = timed(lambda: scoring.clip_scores(clip, pil, prompt), repeats)

    folder = Path(tempfile.mkdtemp())

    def png_once():  # what the app does: images.save_png, once per image
        for index, image in enumerate(pil):
            images.save_png(image, folder / f"{index}.png", {"prompt": prompt, "seed": str(index)})

    def webp_per_update():
        for image in pil:
            image.save(io.BytesIO(), format="WEBP")

    png, webp = timed(png_once, repeats), timed(webp_per_update, repeats)
    shutil.rmtree(folder)
    print(f"CPU, tiny-flux 256x256, 4 steps, {len(seeds)} seeds (median of {repeats}):")
    print(f"  batch in one call: {batched * 1000:.1f} ms; {len(seeds)} single calls: {singles * 1000:.1f} ms; "
          f"speed-up x{singles / batched:.2f}")
    print(f"  CLIP scoring: {clip_time * 1000:.1f} ms = {100 * clip_time / batched:.1f}% of generation (target < 5%)")
    print(f"  display encoding per batch: PNG once {png * 1000:.1f} ms ({100 * png / batched:.1f}% of generation); "
          f"Gradio default WebP re-encode {webp * 1000:.1f} ms per update (lossy), avoided by serving files")


def verifier_section(repeats: int) -> None:
    """Each verifier stand-in's seconds per batch (PIL images, as CLIP above) as a share of tiny-flux generation."""
    from goldennoise.generation.verifiers import speed

    model = models.load_model("tiny-flux", device="cpu", dtype=torch.float32)
    params = generation.GenerationParams(4, 0.0, 256, 256, 256)
    seeds = [11, 12, 13, 14]
    batched = timed(lambda: generation.generate(model, speed.PROMPT, seeds, params), repeats)
    print(f"Verifier stand-ins on CPU, batch of {len(seeds)} at 256x256 (median of {repeats}; real weights cost more):")
    for name in sorted(verifiers.STAND_INS):
        scorer = verifiers.load(name, device="cpu")
        seconds = speed.seconds_per_batch(scorer, n=len(seeds), size=256, repeats=repeats, pil=True)
        print(f"  {name}: {seconds * 1000:.1f} ms = {100 * seconds / batched:.1f}% of generation "
              f"({scorer.info()['dtype']})")


def latents_overhead(repeats: int) -> None:
    """The cost of making the latents here and passing them (latents=) vs letting the pipeline draw them."""
    prompt, seeds = "a lighthouse on a cliff in a storm", [11, 12, 13, 14]
    print(f"Generator path vs latents= path, tiny-flux 256x256, 4 steps, batch of {len(seeds)} (median of {repeats}):")
    for dtype in ("float32", "bfloat16"):
        model = models.load_model("tiny-flux", device="cpu", dtype=dtype)
        params = generation.GenerationParams(4, 0.0, 256, 256, 256)
        kwargs = dict(num_inference_steps=4, guidance_scale=0.0, height=256, width=256, max_sequence_length=256,
                      output_type="pt")

        def generator_path():
            with torch.inference_mode():
                model.pipe([prompt] * len(seeds), generator=[latents.generator(s) for s in seeds], **kwargs)

        ours = timed(lambda: generation.generate(model, prompt, seeds, params), repeats)
        theirs = timed(generator_path, repeats)
        prepare = timed(lambda: generation.prepare(model, seeds, params), repeats)
        print(f"  {dtype}: generator path {theirs * 1000:.1f} ms, latents= path {ours * 1000:.1f} ms "
              f"(of which drawing, packing and provenance hashes {prepare * 1000:.2f} ms): "
              f"overhead {100 * (ours - theirs) / theirs:+.1f}%")


def build_flux_schnell_random(device: str, dtype: torch.dtype):
    """A FluxPipeline with FLUX.1-schnell's real component configs and random weights (no download)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from goldennoise.generation import tiny

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(
                patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                guidance_embeds=False, axes_dims_rope=(16, 56, 56))
            text_encoder_2 = T5EncoderModel(T5Config(
                d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
                feed_forward_proj="gated-gelu", dropout_rate=0.0))
            text_encoder = CLIPTextModel(CLIPTextConfig(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                max_position_embeddings=77, vocab_size=49408, projection_dim=768, bos_token_id=512, eos_token_id=513))
            vae = AutoencoderKL(
                in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                use_post_quant_conv=False)
    finally:
        torch.set_default_dtype(previous)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False), vae=vae,
                        text_encoder=text_encoder.eval(), tokenizer=tiny._clip_tokenizer(),
                        text_encoder_2=text_encoder_2.eval(), tokenizer_2=tiny._t5_tokenizer(),
                        transformer=transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def plain_vs_fast(pipe, device: str, size: int, steps: int, batches: list[int], compile_denoiser: bool,
                  repeats: int, tflop_per_image_step: float | None) -> None:
    from goldennoise.generation import runtime

    kwargs = dict(num_inference_steps=steps, guidance_scale=0.0, height=size, width=size, max_sequence_length=256)
    prompt = "a lighthouse on a cliff in a storm, cinematic"

    def plain(n):  # one call per seed, as a hand-written collection script does
        for seed in range(n):
            pipe(prompt, generator=torch.Generator(device).manual_seed(seed), **kwargs)

    def fast(n):  # GoldenNoise: one call per batch, latents made here from one CPU generator per seed, tensors out
        model = models.LoadedModel(pipe, models.resolve("tiny-flux"), "bench", None, device,
                                   str(pipe.transformer.dtype).removeprefix("torch."), type(pipe).__name__)
        params = generation.GenerationParams(steps, 0.0, size, size, 256)
        generation.generate(model, prompt, list(range(n)), params)

    results = {}
    for n in batches:
        results[("plain", n)] = timed(lambda: plain(n), repeats) / n
    compiled = runtime.compile_module(runtime.denoiser(pipe)) if compile_denoiser else "off"
    for n in batches:
        results[("fast", n)] = timed(lambda: fast(n), repeats) / n
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"Plain diffusers vs GoldenNoise fast path on {name}, {size}x{size}, {steps} steps "
          f"(compile: {compiled}; median of {repeats}):")
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    for n in batches:
        plain_s, fast_s = results[("plain", n)], results[("fast", n)]
        line = f"  batch {n:>2}: plain {plain_s:.3f} s/image, fast {fast_s:.3f} s/image, speed-up x{plain_s / fast_s:.2f}"
        if tflop_per_image_step:
            achieved = tflop_per_image_step * steps / fast_s
            line += f"; {achieved:.0f} TFLOP/s" + (f" = {100 * achieved / peak:.0f}% of bf16 peak" if peak else "")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gpu-arch", choices=["auto", "flux", "tiny"], default="auto")
    parser.add_argument("--compile", action="store_true", help="compile the denoiser on the fast path")
    args = parser.parse_args()
    hub.quiet_loading()
    cpu_section(args.repeats)
    verifier_section(args.repeats)
    latents_overhead(args.repeats)
    arch = args.gpu_arch if args.gpu_arch != "auto" else ("flux" if torch.cuda.is_available() else "tiny")
    if arch == "flux":
        if not torch.cuda.is_available():
            sys.exit("--gpu-arch flux needs a CUDA GPU (about 40 GB of memory).")
        torch.backends.cuda.matmul.allow_tf32 = True
        pipe = build_flux_schnell_random("cuda", torch.bfloat16)
        plain_vs_fast(pipe, "cuda", 1024, 4, [4, 16], args.compile, max(2, args.repeats // 2),
                      FLUX_TFLOP_PER_IMAGE_STEP)
    else:
        pipe = models.load_model("tiny-flux", device="cpu", dtype=torch.float32).pipe
        print("(no CUDA here: the plain-vs-fast comparison runs on the tiny model; "
              "on a GPU it runs FLUX.1-schnell's real architecture)")
        plain_vs_fast(pipe, "cpu", 256, 4, [4, 16], args.compile, args.repeats, None)


if __name__ == "__main__":
    main()
