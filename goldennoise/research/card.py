"""The dataset card: README.md of the Hugging Face dataset, generated from what was exported.

YAML front matter (license, task categories, `configs` with their data files,
`dataset_info` with each config's features) is written with `datasets`' own
`DatasetInfosDict` / `MetadataConfigs`, as `push_to_hub` writes it. The text says
what a row is, which records count, how to re-make a noise from a row with plain
torch, how the data was collected (each campaign's definition) and the counts.

Prompts are never in the card. The few user strings that are (model ids,
campaign names, schedulers) pass through `md`, so they stay plain text.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from goldennoise.store.schema import ANSWER_KINDS

LICENSE = "other"  # the collector's choice; the images inherit the model's licence
LICENSE_NAME = "same-as-the-model"
TAGS = ["golden-noise", "diffusion", "initial-noise", "seed-selection", "human-feedback", "preference"]
DESIGN_KEYS = (("model", "model"), ("revision", "revision"), ("dtype", "dtype"), ("height", "height"),
               ("width", "width"), ("num_inference_steps", "steps"), ("guidance_scale", "guidance"),
               ("max_sequence_length", "max sequence length"), ("scheduler", "scheduler"),
               ("seed_strategy", "seed strategy"), ("start_seed", "start seed"), ("pool_size", "pool size"),
               ("batch_size", "seeds shown per prompt"), ("candidates", "pre-filter candidates (0: off)"),
               ("prefilter", "pre-filter ranking"), ("explore", "exploration slots"),
               ("blind", "blind (scores hidden)"),
               ("min_view_ms", "minimum viewing time (ms)"), ("clip", "CLIP scores computed"),
               ("overlap", "overlap (fraction judged twice)"), ("prompts_sha256", "prompt list sha256"))


def md(text, limit: int = 120) -> str:
    """A user string as inert Markdown: one line, bounded, HTML and Markdown syntax escaped."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#!|~])", r"\\\1", text)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def front_matter(configs: dict[str, dict]) -> str:
    """YAML front matter; `configs`: name -> {features, num_rows, num_bytes, path}, the first is the default."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(license=LICENSE, license_name=LICENSE_NAME, tags=TAGS,
                           task_categories=["text-to-image", "image-classification"],
                           pretty_name="GoldenNoise judgements",
                           size_categories=[_size_category(sum(c["num_rows"] for c in configs.values()))])
    infos, metadata = {}, {}
    for i, (name, config) in enumerate(configs.items()):
        splits = SplitDict()
        splits.add(SplitInfo("train", num_bytes=config["num_bytes"], num_examples=config["num_rows"]))
        infos[name] = DatasetInfo(features=config["features"], splits=splits, dataset_size=config["num_bytes"])
        metadata[name] = {"data_files": [{"split": "train", "path": config["path"]}]}
        if i == 0:
            metadata[name]["default"] = True
    DatasetInfosDict(infos).to_dataset_card_data(data)
    MetadataConfigs(metadata).to_dataset_card_data(data)
    return f"---\n{data.to_yaml()}\n---\n"


def record_counts(records: list, live_records: list) -> dict:
    """How many answers were recorded, retracted, superseded and live, by kind."""
    answers = [r for r in records if r.kind in ANSWER_KINDS]
    live_ids = {r.record_id for r in live_records}
    owner = {r.record_id: r.annotator for r in records}
    retracted = {r.retracts for r in records if r.kind == "retraction" and owner.get(r.retracts) == r.annotator}
    counts = {"recorded": len(answers), "retracted": sum(r.record_id in retracted for r in answers)}
    counts["superseded"] = sum(r.record_id not in live_ids and r.record_id not in retracted for r in answers)
    for kind in ANSWER_KINDS:
        counts[f"live_{kind}"] = sum(r.kind == kind for r in live_records)
    counts["second_opinions"] = sum(bool(getattr(r, "second_opinion_of", None)) for r in live_records)
    return counts


REMAKE = '''```python
import json, torch

def pack_2x2(x):  # FLUX.1: (1, C, h, w) -> (1, h/2 * w/2, 4C), as FluxPipeline._pack_latents
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)

row = ds[0]
generator = torch.Generator("cpu").manual_seed(row["seed"])
noise = torch.randn(row["noise_shape"], generator=generator, dtype=torch.float32)  # the draw: float32, CPU
dtype = getattr(torch, row["pipeline_dtype"])
latents = pack_2x2(noise).to(dtype) if row["family"] == "flux1" else noise.to(dtype)  # what was passed
image = pipe(prompt=row["prompt"], latents=latents, generator=generator,  # the generator, past the draw
             num_inference_steps=row["num_inference_steps"], guidance_scale=row["guidance_scale"],
             height=row["height"], width=row["width"]).images[0]
```'''

FAMILIES = "\n".join([  # H x W the image size, f the VAE scale factor
    "| family | pipelines | draw `noise_shape` | passed as `latents=` | then the pipeline |",
    "|---|---|---|---|---|",
    "| flux1 | FluxPipeline | (1, C, h, w), C = in_channels/4, h = 2·(H // 2f) | pack 2×2, then cast to "
    "`pipeline_dtype` | uses it as is |",
    "| flux2 | Flux2Pipeline | (1, C, H // 2f, W // 2f) | cast | flattens to (h·w, C) |",
    "| sd | StableDiffusion(XL)Pipeline | (1, C, H // f, W // f) | cast (never pre-scaled) | multiplies by `scale` "
    "(init_noise_sigma) in `pipeline_dtype`: `dtype(dtype(x)·σ)` |",
    "| sd3 | StableDiffusion3Pipeline | (1, C, H // f, W // f) | cast | uses it as is |",
    "| pixel | DigitsPipeline (GoldenNoise's digits model) | (1, C, S, S), S = unet sample_size, whatever H, W | cast "
    "| uses it as is; upscales its output to H × W |",
])


def _campaign_lines(campaigns: dict[str, dict], present: set[str]) -> list[str]:
    lines = []
    for campaign_id in sorted(present):
        definition = campaigns.get(campaign_id)
        if definition is None:
            lines += [f"### {md(campaign_id, 80)}", "",
                      "No campaign definition was found in the outputs folder for these records "
                      "(records made before campaigns existed, or through the Python facade with explicit seeds).", ""]
            continue
        lines += [f"### {md(definition.get('name', campaign_id), 80)} (id {md(campaign_id, 80)})", "",
                  "| setting | value |", "|---|---|"]
        prefiltered = bool(definition.get("candidates"))
        for key, label in DESIGN_KEYS:
            if key in ("prefilter", "explore") and not prefiltered:
                continue
            if definition.get(key) is not None:
                value = definition[key]
                if key == "model" and str(value).startswith(("/", ".", "~")):
                    value = Path(str(value)).name + " (a local folder)"  # never a path of the collecting machine
                lines.append(f"| {label} | {md(value, 80)} |")
        lines.append(f"| annotators allowed | {len(definition.get('annotators') or []) or 'anyone'} |")
        lines.append("")
    return lines


def golden_rate(row: dict) -> str:
    """A config's golden rate for the card: golden / rows, or under a pre-filter the weighted rate of every generated
    candidate with its interval, and the rate among the shown seeds beside it, named as such."""
    if not row["rows"]:
        return "–"
    naive = f"{row['golden'] / row['rows']:.3f}"
    weighted = row.get("weighted")
    if not weighted:
        return naive
    low, high = weighted["ci_low"], weighted["ci_high"]
    interval = f" [{low:.3f}, {high:.3f}]" if low == low and high == high else " (no interval: too few prompts)"
    return f"{weighted['rate']:.3f}{interval} weighted by 1/propensity; {naive} among shown seeds (not corrected)"


def _count_table(rows: list[dict]) -> list[str]:
    head = ["config", "rows", "golden", "bad", "golden rate", "prompts", "seeds", "annotators", "judgements",
            "pairwise answers"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| `{r['config']}` | {r['rows']} | {r['golden']} | {r['rows'] - r['golden']} | "
                     f"{golden_rate(r)} | {r['prompts']} | {r['seeds']} | {r['annotators']} | {r['judgements']} | "
                     f"{r['pairwise']} |")
    if any(r.get("weighted") for r in rows):
        resampled = next(r["weighted"]["resampled"] for r in rows if r.get("weighted"))
        lines += ["", "With a pre-filter the shown seeds are the best-ranked candidates plus a few explored at random, "
                  "so the share of golden among them (the rate among shown seeds) overstates how often a generated "
                  "seed is golden. The golden rate of such a config is the inverse-propensity-weighted (Hajek) "
                  "estimate over every generated candidate, sum(golden / propensity) / sum(1 / propensity), with a "
                  f"95% interval that resamples whole {resampled}; the rate among shown seeds is beside it. Weight "
                  "rows by 1 / `propensity` for any other rate."]
    return lines


def body(summary: dict) -> str:
    """The card's Markdown. `summary`: see export.summary (counts, configs, campaigns, checks)."""
    c = summary["records"]
    checks = summary["checks"]
    first = next(iter(summary["configs"]), "samples-…")
    pooled = summary["pool"]
    lines = [
        "# GoldenNoise judgements", "",
        "People judged the images that a text-to-image diffusion model made from different initial noises "
        "(seeds) for the same prompt, and marked the **golden** ones. Every row carries the exact provenance of "
        "its noise, so the noise can be re-made from the seed alone and checked against its hashes (a row whose "
        "`noise_source` is not `seed` started from a noise made from its seed's draw, e.g. NPNet's re-denoising, "
        "named by `source_sha256` and kept in the campaign's outputs folder under `noises/` and in the `npz` "
        "export; the golden rate pools both kinds: compare them by `noise_source`). In the pairwise configs "
        "`noise_source` is `seed` only when both sides started from their seed's draw, else it names both "
        "(`redenoise vs seed`), and `noise_source_0`/`_1` give each side; a pair with `seed_0 == seed_1` compares "
        "one seed's draw x_T with the noise x'_T made from it (NPNet's comparison): the draw's hash "
        "`noise_sha256_*` is the same on both sides, and `source_sha256_*` names the made one.", "",
        "```python", "from datasets import load_dataset", "",
        f'ds = load_dataset("{summary.get("repo_id") or "path/to/this/folder"}", "{first}", split="train")',
        'splits = ds.train_test_split(test_size=0.2, stratify_by_column="golden", seed=0)', "```", "",
        "A stratified split mixes prompts and seeds between train and test. To measure whether golden noise "
        "generalises, hold out whole prompts (or seeds): group by `prompt_id` or `seed`.", "",
        "## Configurations", "",
        ("All campaigns and generation configurations are **pooled** into one config, as asked. Noises of "
         "different models, sizes or dtypes are not comparable: filter on `configuration` before any analysis."
         if pooled else
         "One pair of configs per campaign and generation configuration (model id and revision, pipeline class, "
         "dtype, size, steps, guidance, scheduler): `samples-<group>` (one row per judged seed) and "
         "`pairwise-<group>` (one row per pairwise answer). Noises of different configurations are never mixed."), "",
        "| config | rows | generation configuration |", "|---|---|---|",
        *[f"| `{name}` | {info['num_rows']} | {md(info['label'])} |" for name, info in summary["configs"].items()],
        "",
        "## What a row is", "",
        "**samples-\\***: one seed shown in one live judgement. `image` is the image as the annotator saw it "
        "(PNG, embedded); `golden` is a `ClassLabel` (0 = bad, 1 = golden); `seed` is int64. With it: the prompt "
        "(`prompt`, `prompt_id`, `prompt_index` in its campaign), `clip_score` (full precision; `shown_scores` says "
        "whether scores were on screen), `annotator`, `record_id`, `created_at`, `verdict` of the whole judgement, "
        "`position` on screen, `visible_ms` (how long the batch was visible before the answer), pre-filter `slot` "
        "and `propensity`, the flattened generation configuration (`model_id`, `revision`, `pipeline_class`, "
        "`dtype`, `height`, `width`, `num_inference_steps`, `guidance_scale`, `scheduler`, `max_sequence_length`) "
        "and the noise provenance (`family`, `packing`, `scale`, `pipeline_dtype`, `noise_shape`, `latents_shape`, "
        "`noise_sha256`, `latents_sha256`, `noise_order`, `noise_provenance`: the record's full noise block as "
        "JSON, `noise_check`: how this export verified it).", "",
        "**pairwise-\\***: one live pairwise answer, in the Pick-a-Pic layout: `caption`, `image_0` (left), "
        "`image_1` (right), `label_0` / `label_1` = 1/0 when the left image won, 0/1 when the right one won, "
        "0.5/0.5 for a tie. **both_bad** (neither image is acceptable, an answer Pick-a-Pic does not have) is "
        "`label_0 = label_1 = 0` with `winner = \"both_bad\"`; keep rows with `label_0 + label_1 == 1` for a "
        "Pick-a-Pic-style preference set. `seed_0`/`seed_1`, `clip_score_0`/`clip_score_1` and "
        "`noise_sha256_0`/`_1`, `noise_provenance_0`/`_1` describe each side.", "",
        *_verifier_lines(summary.get("verifiers") or {}),
        "## Which records count", "",
        "Only **live** answers: an answer undone by its annotator (a retraction line) or relabelled by its own "
        "annotator (a later judgement that supersedes it) is left out; only an annotator's own lines can retract "
        "or relabel. A **second opinion** (another annotator re-judging the same images) is kept beside the first "
        "judgement: both are rows, and `second_opinion_of` names the first. Skips are not rows. A record whose "
        "recorded noise does not match its seed is left out and listed by `goldennoise verify`.", "",
        f"Recorded answers: {c['recorded']}; retracted: {c['retracted']}; superseded by a relabel: "
        f"{c['superseded']}. Live: {c['live_judgement']} judgements ({c['second_opinions']} second opinions), "
        f"{c['live_pairwise']} pairwise answers, {c['live_skip']} skips. Left out for a noise mismatch: "
        f"{summary['excluded']} record(s).", "",
        "## How to re-make a noise exactly", "",
        "GoldenNoise never lets the pipeline draw its own noise: it draws a float32 tensor on a CPU generator, "
        "builds the family's initial latents and passes them as `latents=`. From a row, in plain torch + diffusers "
        "(the same generator is passed on, already advanced past the draw, for schedulers that add noise at each "
        "step):", "", REMAKE, "", FAMILIES, "",
        "`noise_order` spells the order for the row. The float32 draw's bytes (`noise_sha256`) depend on the CPU's "
        "kernels (AVX2 and plain differ by about 1e-6): on another CPU compare with the fingerprint in "
        "`noise_provenance` (`goldennoise.generation.latents.verify(seed, json.loads(row[\"noise_provenance\"]))` "
        "does both).", "",
        f"This export re-made every noise: {checks.get('exact', 0)} matched their hashes exactly, "
        f"{checks.get('tolerance', 0)} matched the fingerprint within the tolerance (recorded on a CPU with other "
        f"kernels), {checks.get('missing', 0)} had no noise block.", "",
        "## Collection design", "",
        "Each campaign fixes the model, the generation parameters, the prompt list and the seed design; its id is "
        "a hash of all of them. With a pre-filter, more candidates than shown are made per prompt: the best "
        "(by CLIP score or a trained seed selector) fill the `ranked` slots, and `explore` slots are drawn at "
        "random from the rest, so every shown seed has a known `propensity` (probability it was shown); weight "
        "rows by 1/propensity to undo the selection. Images are shown in random order.", "",
        *_campaign_lines(summary["campaigns"], set(summary["campaign_ids"])),
        "## Counts", "", *_count_table(summary["counts"]), "",
        "In all: {rows} rows, {prompts} prompts, {seeds} distinct seeds, {annotators} annotators, {judgements} "
        "judgements, {pairwise} pairwise answers.".format(**summary["totals"]), "",
        "## Noise-training exports", "",
        "`goldennoise export OUTPUTS --formats npnet` writes NPNet-compatible files (one `.npz` per pair with "
        "`arr_0` the loser noise, `arr_1` the winner noise, `arr_2` a prompt index, and `prompts.txt`). They are "
        "**human-preference pairs** (a golden seed's noise against a bad seed's noise under the same prompt, or "
        "a pairwise answer's winner against its loser), **not** the re-denoised target noises of NPNet's original "
        "data. `--formats npz` writes classification arrays (noises, golden, int64 seeds).", "",
        "## Licence", "",
        "The images were made by the model named in each row and inherit its licence; set this card's licence "
        "to match before publishing.", "",
    ]
    return "\n".join(lines)


def _verifier_lines(found: dict) -> list[str]:
    """The verifier score columns and what made them (name -> the distinct weights that scored)."""
    if not found:
        return []
    lines = ["## Verifier scores", "",
             "Beside `clip_score`, automatic verifiers scored every image when it was made, on the 8-bit pixels "
             "saved in `image`: `score_<name>` (float32; `score_<name>_0` / `_1` in pairwise configs). Only their "
             "order within a prompt is comparable across verifiers. Scored by:", ""]
    for name, infos in sorted(found.items()):
        for info in infos:
            standin = " (an offline stand-in with random weights: its scores mean nothing)" if str(
                info.get("id", "")).startswith("tiny-") else ""
            lines.append(f"- `score_{name}`: {md(str(info.get('id')))} revision {md(str(info.get('revision')))}, "
                         f"recipe version {info.get('version')}, {info.get('dtype')}: {md(str(info.get('score')))}"
                         f"{standin}")
    return lines + [""]


def redenoise_readme(judged: int, passed: int, everything: bool) -> str:
    """The card of an NPNet dataset made from a campaign's re-denoised candidates (`export.write_redenoise`)."""
    kept = (f"All {judged} pairs, whatever people said: `index.jsonl` gives each one's human label (`golden`)."
            if everything else f"The {passed} of {judged} pairs whose re-denoised image people marked golden.")
    return f"""# NPNet's dataset, filtered by people (GoldenNoise)

Pairs (x_T, x'_T) as NPNet's re-denoise sampling makes them: `arr_0` the seed's float32 draw x_T,
`arr_1` its re-denoised noise x'_T (one denoising step with guidance, inverted without it; the
parameters are each row's `method` in `index.jsonl`), `arr_2` the prompt's number in `prompts.txt`.
Point NPNet's `NoiseDataset(pick=True, data_dir=".../npz", prompt_path=".../prompts.txt")` at this folder.

{kept}

**The filter was human.** NPNet keeps a pair when a reward model (HPSv2) scores the image of x'_T above
the image of x_T. Here annotators saw the image of x'_T among plain seeds' images of the same prompt,
not told which was which, and the pair passes when they marked it golden: a judgement of the
re-denoised image on its own, not a comparison with the image of the same seed's x_T (which was
never shown). Counts: {judged} re-denoised candidates judged, {passed} marked golden.
"""


def redenoise_compared_readme(compared: int, preferred: int, ties: int, both_bad: int, everything: bool) -> str:
    """The card of an NPNet dataset from same-seed comparisons (`export.write_redenoise`, pairing same_seed)."""
    kept = (f"All {compared} compared pairs, whatever people said: `index.jsonl` gives each one's answer "
            "(`winner`: redenoise, seed, tie or both_bad) and `preferred` (true when x'_T's image won)."
            if everything else f"The {preferred} of {compared} compared pairs whose x'_T image people preferred.")
    return f"""# NPNet's dataset, filtered by people's side-by-side preference (GoldenNoise)

Pairs (x_T, x'_T) as NPNet's re-denoise sampling makes them: `arr_0` the seed's float32 draw x_T,
`arr_1` its re-denoised noise x'_T (one denoising step with guidance, inverted without it; the
parameters are each row's `method` in `index.jsonl`), `arr_2` the prompt's number in `prompts.txt`.
Point NPNet's `NoiseDataset(pick=True, data_dir=".../npz", prompt_path=".../prompts.txt")` at this folder.

{kept}

**The filter was human, and it is NPNet's own comparison.** NPNet keeps a pair when a reward model
(HPSv2) scores the image of x'_T above the image of x_T. Here annotators saw those two images of one
seed side by side (Pairwise, left and right drawn at random, not told which was which) and the pair
passes when they preferred the image of x'_T. Counts: {compared} pairs compared, {preferred} preferred
x'_T, {compared - preferred - ties - both_bad} preferred x_T, {ties} ties, {both_bad} both bad (ties and "both bad" do
not pass).
"""


NPNET_README = """# NPNet-compatible preference pairs (GoldenNoise)

One folder per campaign and generation configuration. In each:
- `npz/<n>.npz`: `arr_0` the loser noise, `arr_1` the winner noise (float32, (1, C, h, w): the unpacked
  float32 noise each image started from, before packing, casting or scaling: the seed's draw, or for a
  candidate from a noise source its kept noise; `index.jsonl` names which and gives each array's
  sha256), `arr_2` the prompt's number (int64): the
  campaign's prompt index, the `prompt_index` of every other export, unless pooled campaigns make it
  ambiguous, then prompts are numbered 0, 1, ... (`index.jsonl` has both `npnet_index` and `prompt_index`);
- `prompts.txt`: one line per prompt, `{"index": i, "caption": "..."}`, a Python literal as NPNet's
  `load_pick_prompt` reads it with `eval`;
- `index.jsonl`: per file, where the pair comes from (a golden seed against a bad seed of one judgement,
  or a pairwise answer's winner against its loser), the record id, annotator, seeds, model, revision,
  packing, scale, pipeline dtype and noise shape.

Point NPNet's `NoiseDataset(pick=True, data_dir=".../npz", prompt_path=".../prompts.txt")` at one folder.

These are **human-preference pairs**: the winner is another seed's noise that people preferred under the
same prompt, not a re-denoised target noise of the loser as in NPNet's original data (same-seed
comparisons, x_T against its x'_T, are not here: they are NPNet's own pairs, in `-redenoise-compared/`). Ties and "both bad"
pairwise answers make no pair. Where a campaign mixed re-denoised candidates in (`[noise] source =
"redenoise"`), a pair's noise is the one its image started from, and `<folder>-redenoise/` (the pairs
people marked golden) and `<folder>-redenoise-all/` hold NPNet's own (x_T, x'_T) pairs, each with its card.
Where it showed each seed's x_T and x'_T side by side (`[noise] pairing = "same_seed"`),
`<folder>-redenoise-compared/` (the pairs whose x'_T image people preferred) and
`<folder>-redenoise-compared-all/` hold them, with their card.
"""
