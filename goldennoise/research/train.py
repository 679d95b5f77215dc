"""`goldennoise train`: a noise-prompt network (NPNet style) from a campaign's re-denoised candidates, or a
learned verifier from its labels.

    goldennoise train OUTPUTS --out noise-model.safetensors [--campaign-id ID] [--labels golden]
    goldennoise train OUTPUTS --kind verifier --out verifier.safetensors [--labels golden|shuffled]
    accelerate launch -m goldennoise.cli train OUTPUTS --out noise-model.safetensors   # many GPUs (or torchrun)

The verifier (`train_verifier`, `generation.verifiers.learned`): every judged image of the
live judgements, its CLIP [image, text, image x text] embedding (the campaign model's
CLIP), and a logistic head fitted on people's golden/bad labels (`shuffled`: the labels
permuted within each judgement, the control); evaluated within judgement (AUC: a golden
image outscores a bad one of the same judgement) on held-out prompts, beside the
recorded CLIP score's AUC on the same judgements.

The data are NPNet's pairs (x_T, x'_T): each candidate of a `[noise] source =
"redenoise"` campaign whose noise was verified, its seed's draw x_T and its kept
re-denoised noise x'_T, with the prompt; and each same-seed pairwise answer
(`[noise] pairing = "same_seed"`), labelled by whether x'_T's image won. `--labels golden`
(the default) keeps the pairs people marked golden (or preferred), the human filter in
place of NPNet's reward model; `all`
keeps every pair; `shuffled` keeps as many pairs as `golden` would, drawn at random (the
control that says whether the human filter adds anything). The network
(`generation.noise_model.NoiseNet`) learns x_T + prompt -> x'_T by mean squared error,
full batch, in one process or under `accelerate launch` / torchrun: each process takes
every k-th training pair and DistributedDataParallel averages the gradients (the network
is small; the processes share the pipeline's prompt embeddings' work, not the model's).

Held out: a fifth of the prompts (seeded), and every seed that appears under them, are
left out of training; the card reports, on those pairs, the network's error beside the
identity's (x'_T predicted by x_T itself) and the cosine between the predicted and the
true change. A gain in images is measured where it counts: in a campaign that serves
the checkpoint (`[noise] source = "model"`) and the analysis's Noise sources section.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from goldennoise import ids
from goldennoise.errors import UserError
from goldennoise.generation import models, noise_model, scoring
from goldennoise.generation.verifiers import learned
from goldennoise.generation.latents import initial_noise
from goldennoise.generation.noises import NoiseStore
from goldennoise.research import dataset
from goldennoise.research.analysis.inference import weighted_auc
from goldennoise.research.verify import Checker
from goldennoise.store.records import RecordStore

LABELS = ("golden", "all", "shuffled")


def pairs(outputs: str | Path, campaign: str | None = None, store=None) -> dict:
    """The verified re-denoise pairs people labelled: re-denoised candidates of live judgements (label: golden) and
    same-seed pairwise answers, x_T against x'_T (`[noise] pairing = "same_seed"`; label: x'_T's image won). Draws,
    targets (N, C, h, w), prompts, ids, labels."""
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    chosen = ... if campaign is None else campaign
    keep = ["seed", "noise", "prompt", "prompt_id", "golden", "model_id", "dtype", "campaign", "configuration",
            "max_sequence_length"]
    parts = []
    table = dataset.sample_table(records, chosen)
    if not table.empty and "noise_source" in table:
        parts.append(table.loc[table["noise_source"].astype(object) == "redenoise",
                               [k for k in keep if k in table]])
    compared = dataset.pair_table(records, chosen)
    if not compared.empty and "left_noise_source" in compared:
        same = compared[compared["left_seed"] == compared["right_seed"]]
        for side, other in (("left", "right"), ("right", "left")):
            rows = same[(same[f"{side}_noise_source"].astype(object) == "redenoise")
                        & (same[f"{other}_noise_source"].astype(object) == "seed")]
            rows = rows.assign(seed=rows[f"{side}_seed"], noise=rows[f"{side}_noise"],
                               golden=rows["winner"].astype(object) == side)
            parts.append(rows[[k for k in keep if k in rows]])
    rows = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else pd.DataFrame()
    if rows.empty:
        raise UserError("outputs: no re-denoised candidates were judged or compared here; run a campaign with "
                        "[noise] source = \"redenoise\" first.", "outputs")
    if rows["configuration"].nunique() > 1 or rows["campaign"].nunique() > 1:
        raise UserError("outputs: re-denoised candidates of several campaigns or configurations; choose one with "
                        "--campaign-id.", "campaign")
    checker = Checker(NoiseStore(outputs))
    draws, targets = [], []
    for seed, block in zip(rows["seed"], rows["noise"]):
        status, reason = checker.check(int(seed), block)
        if status not in ("exact", "tolerance"):
            raise UserError(f"outputs: a re-denoised noise does not verify ({reason}); run `goldennoise verify`.",
                            "outputs")
        targets.append(torch.from_numpy(checker.noise(int(seed), block)))
        draws.append(initial_noise(int(seed), tuple(block["shape"])))
    return {"draws": torch.cat(draws), "targets": torch.cat(targets), "prompts": list(rows["prompt"].astype(str)),
            "prompt_ids": list(rows["prompt_id"].astype(str)), "seeds": rows["seed"].to_numpy(np.int64),
            "golden": rows["golden"].to_numpy(bool), "model_id": str(rows["model_id"].iloc[0]),
            "dtype": str(rows["dtype"].iloc[0]), "campaign": str(rows["campaign"].iloc[0]),
            "max_sequence_length": rows["max_sequence_length"].iloc[0] if "max_sequence_length" in rows else None}


def _split(prompt_ids: list[str], seeds: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row masks: a fifth of the prompts held out, and their seeds kept out of training."""
    rng = np.random.default_rng(seed)
    distinct = np.array(sorted(set(prompt_ids)))
    held = set(rng.choice(distinct, size=max(1, len(distinct) // 5), replace=False).tolist())
    out = np.array([p in held for p in prompt_ids])
    train = ~out & ~np.isin(seeds, seeds[out])
    return train, out


def train(outputs: str | Path, out: str | Path, campaign: str | None = None, labels: str = "golden",
          epochs: int = 300, width: int = 32, seed: int = 0, store=None, log=print) -> dict:
    """Train, evaluate on held-out prompts and seeds, write the checkpoint; return its card."""
    if labels not in LABELS:
        raise UserError(f"labels: {labels!r} is not one of {', '.join(LABELS)}.", "labels")
    data = pairs(outputs, campaign, store)
    model = models.load_model(data["model_id"], device="cpu", dtype="float32")
    length = int(data["max_sequence_length"]) if pd.notna(data["max_sequence_length"]) else 512
    embedding = noise_model.prompt_embedding(model.pipe, data["prompts"], length)
    train_rows, held = _split(data["prompt_ids"], data["seeds"], seed)
    chosen = train_rows & data["golden"] if labels == "golden" else train_rows.copy()
    if labels == "shuffled":  # as many pairs as the human filter keeps, drawn at random
        keep = int((train_rows & data["golden"]).sum())
        picked = np.random.default_rng(seed + 1).choice(np.flatnonzero(train_rows), size=keep, replace=False)
        chosen = np.zeros_like(train_rows)
        chosen[picked] = True
    if chosen.sum() < 4:
        raise UserError(f"outputs: {int(chosen.sum())} training pairs after the '{labels}' filter; judge more "
                        "re-denoised candidates (at least 4).", "outputs")
    # One process, or each of `accelerate launch` / torchrun's: every process builds the same network (same seed),
    # takes every k-th training pair, and DistributedDataParallel averages the gradients, so k processes step as one
    # full-batch process would (equal shards; the last may be one pair short). The first process writes.
    state = Accelerator(cpu=not torch.cuda.is_available())  # CPU processes talk over gloo
    torch.manual_seed(seed)
    net = noise_model.NoiseNet(data["draws"].shape[1], embedding.shape[1], width)
    rows = np.flatnonzero(chosen)[state.process_index::state.num_processes]
    x, y, e = (t[rows].to(state.device) for t in (data["draws"], data["targets"], embedding))
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    net, optimiser = state.prepare(net, optimiser)
    start = time.perf_counter()
    for step in range(epochs):
        loss = torch.nn.functional.mse_loss(net(x, e), y)
        optimiser.zero_grad()
        state.backward(loss)
        optimiser.step()
        if log and state.is_main_process and (step + 1) % max(1, epochs // 4) == 0:
            log(f"step {step + 1}/{epochs}: training error {float(loss):.6f}"
                + (f" (process 0 of {state.num_processes})" if state.num_processes > 1 else ""))
    net = state.unwrap_model(net).cpu().eval()
    card = {"campaign": data["campaign"], "model_id": data["model_id"], "labels": labels,
            "pairs": {"judged": int(len(data["golden"])), "golden": int(data["golden"].sum()),
                      "training": int(chosen.sum()), "held_out": int(held.sum())},
            "config": {**net.config, "epochs": epochs, "seed": seed, "lr": 2e-3},
            "processes": state.num_processes, "device": state.device.type,
            "seconds": round(time.perf_counter() - start, 1), "final_training_error": float(loss.detach())}
    if held.any():
        with torch.no_grad():
            xh, yh, eh = data["draws"][held], data["targets"][held], embedding[held]
            predicted = net(xh, eh)
            true_change, change = (yh - xh).flatten(1), (predicted - xh).flatten(1)
            card["held_out"] = {
                "pairs": int(held.sum()), "prompts": int(len({p for p, h in zip(data["prompt_ids"], held) if h})),
                "network_error": float(torch.nn.functional.mse_loss(predicted, yh)),
                "identity_error": float(torch.nn.functional.mse_loss(xh, yh)),
                "change_cosine": float(torch.nn.functional.cosine_similarity(change, true_change).mean()),
                "note": "prompts and seeds never seen in training"}
    if state.is_main_process:
        card["sha256"] = noise_model.save(net, out, type(model.pipe).__name__, card)
    state.wait_for_everyone()
    if not state.is_main_process:
        card["sha256"] = ids.file_sha256(out)
    return card


def train_verifier(outputs: str | Path, out: str | Path, campaign: str | None = None, labels: str = "golden",
                   epochs: int = 300, seed: int = 0, store=None, log=print) -> dict:
    """Fit the learned verifier on the judged images' CLIP embeddings; held-out prompts evaluated; return its card."""
    from PIL import Image

    if labels not in ("golden", "shuffled"):
        raise UserError(f"labels: a verifier learns from golden labels, or shuffled ones (the control); got "
                        f"{labels!r}.", "labels")
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    table = dataset.sample_table(records, ... if campaign is None else campaign)
    if table.empty or table["golden"].nunique() < 2:
        raise UserError("outputs: the verifier needs judged images, both golden and bad ones.", "outputs")
    if table["configuration"].nunique() > 1 or table["campaign"].nunique() > 1:
        raise UserError("outputs: judgements of several campaigns or configurations; choose one with --campaign-id.",
                        "campaign")
    clip_id = models.resolve(str(table["model_id"].iloc[0])).clip
    # The CLIP embeddings are the work: under `accelerate launch` / torchrun each process embeds its share of the
    # judgements on its device and every process gathers all of them (in the one-process order); the head is small.
    state = Accelerator(cpu=not torch.cuda.is_available())
    scorer = scoring.load_clip(clip_id, device=str(state.device))
    judged = list(table.groupby(["record_id", "prompt"], observed=True, sort=False))
    mine = []
    with state.split_between_processes(list(range(len(judged)))) as share:
        for g in share:
            (record, prompt), part = judged[g]
            images = [Image.open(Path(outputs) / path).convert("RGB") for path in part["image_path"]]
            mine.append((g, part.index.to_numpy(), learned.features(scorer, images, str(prompt)).cpu()))
    rows = [(index, features) for _, index, features in sorted(gather_object(mine) if state.num_processes > 1
                                                                else mine, key=lambda item: item[0])]
    order = np.concatenate([index for index, _ in rows])
    X = torch.cat([f for _, f in rows])
    table = table.loc[order].reset_index(drop=True)
    y = table["golden"].to_numpy(bool)
    record_ids = table["record_id"].astype(str).to_numpy()
    if labels == "shuffled":  # within each judgement: as many golden, on other images
        rng = np.random.default_rng(seed + 1)
        y = y.copy()
        for record in np.unique(record_ids):
            mask = np.flatnonzero(record_ids == record)
            y[mask] = y[mask][rng.permutation(len(mask))]
    train_rows, held = _split(list(table["prompt_id"].astype(str)), table["seed"].to_numpy(np.int64), seed)
    train_rows = ~held  # a verifier is judged on new prompts; seeds may repeat (it scores images, not noises)
    torch.manual_seed(seed)
    head = torch.nn.Linear(X.shape[1], 1)
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    target = torch.tensor(y[train_rows], dtype=torch.float32)
    mean, std = X[train_rows].mean(0), X[train_rows].std(0).clamp_min(1e-6)
    Xs = (X - mean) / std
    start = time.perf_counter()
    for _ in range(epochs):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(Xs[train_rows]).squeeze(1), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():  # fold the standardisation into the head: it then takes raw features
        weight = head.weight / std
        head.bias -= (weight * mean).sum()
        head.weight.copy_(weight)
        scores = head(X).squeeze(1).numpy()
    card = {"campaign": str(table["campaign"].iloc[0]), "model_id": str(table["model_id"].iloc[0]), "clip": clip_id,
            "labels": labels, "images": int(len(y)), "training_images": int(train_rows.sum()),
            "config": {"epochs": epochs, "seed": seed, "lr": 1e-2, "features": "[image, text, image*text]"},
            "processes": state.num_processes, "seconds": round(time.perf_counter() - start, 1)}
    if held.any():
        truth = table["golden"].to_numpy(bool)
        clip = table["clip_score"].to_numpy(float) if "clip_score" in table else np.full(len(y), np.nan)
        card["held_out"] = {
            "images": int(held.sum()), "prompts": int(table.loc[held, "prompt_id"].nunique()),
            "auc": weighted_auc(truth[held], scores[held], strata=record_ids[held]),
            "clip_auc": (weighted_auc(truth[held], clip[held], strata=record_ids[held])
                         if np.isfinite(clip[held]).all() else float("nan")),
            "note": "within-judgement AUC on prompts never seen in training, against people's own labels"}
    if state.is_main_process:
        card["sha256"] = learned.save(head, out, clip_id, card)
    state.wait_for_everyone()
    if not state.is_main_process:
        card["sha256"] = ids.file_sha256(out)
    return card
