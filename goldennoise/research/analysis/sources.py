"""Noise sources against plain seeds: do people mark candidates that started from another noise golden more often?

A campaign with `[noise] source = "redenoise"` gives exactly round(share x n) of each
batch's n candidates the source, at random positions the annotator is not told
(`generation.noises`). So within every judgement the two arms were randomised, and
the comparison is a randomised experiment:

- rates per arm (unit: the candidate) and their difference, source minus plain, with a
  95% interval bootstrapping whole prompts (a prompt's judgements move together);
- p: one-sided permutation test of "the source is no better", the arm labels permuted
  among each batch's candidates, the same permutation for every judgement of that batch
  (the campaign's own randomisation: annotators of one batch saw one assignment), 1,000
  permutations;
- per prompt: each prompt's difference (prompts that had both arms);
- per verifier that scored the images (CLIP included): among pairs of one source and
  one plain candidate of the same judgement that people split (one golden, one not),
  how often the verifier ranks them as people did (0.5 = chance), with the same
  prompt bootstrap.
The seeds' own analyses (per-seed rates, noise statistics, the selector) use the plain
candidates only: a source candidate's noise is not its seed's draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import ClusterBootstrap, codes
from goldennoise.research.analysis.verifiers import pairwise_agreement

PERMUTATIONS = 1000


def present(rows: pd.DataFrame) -> bool:
    """True when some judged candidate of `rows` started from a noise source."""
    return "noise_source" in rows and bool((rows["noise_source"].astype(object) != "seed").any())


def _difference(golden: np.ndarray, arm: np.ndarray, weights: np.ndarray | float = 1.0) -> float:
    w = np.broadcast_to(np.asarray(weights, dtype=float), golden.shape)
    a, b = w[arm].sum(), w[~arm].sum()
    if a == 0 or b == 0:
        return float("nan")
    return float(np.dot(w[arm], golden[arm]) / a - np.dot(w[~arm], golden[~arm]) / b)


def _permutation_p(golden: np.ndarray, arm: np.ndarray, batches: np.ndarray, positions: np.ndarray,
                   observed: float, seed: int) -> float:
    """One-sided p of a difference at least `observed` under the campaign's own randomisation: within each batch
    the arm labels of its candidate positions are permuted, the same permutation for every judgement of that batch
    (two annotators of one batch saw one assignment, not two)."""
    rng = np.random.default_rng(seed)
    batch_codes = codes(batches)
    n_batches = batch_codes.max() + 1
    slot = np.zeros(len(arm), dtype=np.int64)  # each row's candidate: its place among its batch's positions
    labels = {}
    by_batch = np.argsort(batch_codes, kind="stable")  # each batch's rows in order, found once (not a scan a batch)
    bounds = np.searchsorted(batch_codes[by_batch], np.arange(n_batches + 1))
    for b in range(n_batches):
        rows = by_batch[bounds[b]:bounds[b + 1]]
        places = np.unique(positions[rows])
        slot[rows] = np.searchsorted(places, positions[rows])
        labels[b] = np.array([arm[rows[positions[rows] == p][0]] for p in places])
    width = max(len(v) for v in labels.values())
    table = np.zeros((n_batches, width), dtype=bool)
    sizes = np.array([len(labels[b]) for b in range(n_batches)])
    for b in range(n_batches):
        table[b, :sizes[b]] = labels[b]
    padding = np.arange(width)[None, :] >= sizes[:, None]
    hits = 0
    for _ in range(PERMUTATIONS):
        keys = np.where(padding, np.inf, rng.random((n_batches, width)))
        order = np.argsort(keys, axis=1)  # a random permutation of each batch's own places (padding last)
        moved = np.take_along_axis(table, order, axis=1)
        hits += _difference(golden, moved[batch_codes, slot]) >= observed - 1e-12
    return (hits + 1) / (PERMUTATIONS + 1)


def _verifier_agreement(rows: pd.DataFrame, column: str, arm: np.ndarray, boot: ClusterBootstrap) -> dict | None:
    """Discordant cross-arm pairs within a judgement: the share the verifier orders as people did."""
    pairs = []  # (row of the golden candidate, row of the bad one)
    frame = rows.reset_index(drop=True)
    golden = frame["golden"].to_numpy(bool)
    for _, index in frame.groupby("record_id", observed=True).indices.items():
        for i in index:
            for j in index:
                if golden[i] and not golden[j] and arm[i] != arm[j]:
                    pairs.append((i, j))
    if not pairs:
        return None
    scores = frame[column].to_numpy(float)
    good, bad = np.array(pairs).T
    agree = np.where(scores[good] > scores[bad], 1.0, np.where(scores[good] == scores[bad], 0.5, 0.0))
    valid = np.isfinite(scores[good]) & np.isfinite(scores[bad])
    if not valid.any():
        return None
    agree, good = agree[valid], good[valid]
    low, high = boot.interval(lambda m: float(np.average(agree, weights=m[good])) if m[good].sum() else np.nan)
    return {"agreement": float(agree.mean()), "ci_low": low, "ci_high": high, "pairs": int(len(agree))}


def analyse(rows: pd.DataFrame, draws: int = 1000, seed: int = 0) -> dict:
    """The comparison of every noise source in `rows` (a group's judged candidates, both arms) with plain seeds."""
    frame = rows.reset_index(drop=True)
    sources = sorted(set(frame["noise_source"].astype(object)) - {"seed"})
    boot = ClusterBootstrap(frame["prompt_id"], None, draws, seed)
    out = {"bootstrap": boot.described, "sources": [], "per_prompt": {}, "verifiers": {}, "notes": []}
    golden = frame["golden"].to_numpy(float)
    batches = codes(frame["batch_id"].astype(object).fillna(frame["record_id"].astype(object)))
    positions = frame["position"].to_numpy(np.int64)
    arms = frame["noise_source"].astype(object)
    for name in sources:
        # judgements that had both this source and plain seeds: the arms compared within them
        kind = frame["noise_source"].astype(object)
        by_record = frame["record_id"]
        mixed = ((kind == "seed").groupby(by_record, observed=True).transform("any")
                 & (kind == name).groupby(by_record, observed=True).transform("any")).to_numpy(bool)
        use = mixed & arms.isin(["seed", name]).to_numpy()
        if not use.any():
            out["notes"].append(f"{name}: no judgement had both {name} and plain candidates; nothing to compare.")
            continue
        sub, arm = frame[use], (arms == name).to_numpy()[use]
        y = golden[use]
        diff = _difference(y, arm)
        sub_boot = ClusterBootstrap(sub["prompt_id"], None, draws, seed)
        low, high = sub_boot.interval(lambda m: _difference(y, arm, m))
        share = sub.loc[arm, "source_share"].astype(float) if "source_share" in sub else pd.Series(dtype=float)
        out["sources"].append({
            "source": name, "rate": float(y[arm].mean()), "plain_rate": float(y[~arm].mean()),
            "difference": diff, "ci_low": low, "ci_high": high,
            "p": _permutation_p(y, arm, batches[use], positions[use], diff, seed),
            "candidates": int(arm.sum()), "plain_candidates": int((~arm).sum()),
            "judgements": int(sub["record_id"].nunique()), "prompts": int(sub["prompt_id"].nunique()),
            "share": float(share.mean()) if len(share) else float("nan")})
        per_prompt = (sub.assign(arm=np.where(arm, name, "seed"))
                      .groupby(["prompt_id", "arm"], observed=True)["golden"].mean().unstack())
        if name in per_prompt and "seed" in per_prompt:
            per_prompt = per_prompt.dropna()
            out["per_prompt"][name] = pd.DataFrame({
                "prompt_id": per_prompt.index.astype(str), f"{name} rate": per_prompt[name].round(3).to_numpy(),
                "plain rate": per_prompt["seed"].round(3).to_numpy(),
                "difference": (per_prompt[name] - per_prompt["seed"]).round(3).to_numpy()}
            ).sort_values("difference", ascending=False, kind="stable").reset_index(drop=True)
        columns = [c for c in sub.columns if c == "clip_score" or str(c).startswith("score_")]
        table = {}
        for column in columns:
            agreement = _verifier_agreement(sub, column, arm, sub_boot)
            if agreement is not None:
                table["clip" if column == "clip_score" else column.removeprefix("score_")] = agreement
        out["verifiers"][name] = table
    return out


def pairwise(pairs: pd.DataFrame, draws: int = 1000, seed: int = 0) -> list[dict]:
    """Pairwise answers with one side from a noise source and the other a plain candidate: how often the sourced
    side won, per source and pairing: "same seed" (one seed's draw x_T against the source's noise x'_T made from
    it, `[noise] pairing = "same_seed"`: NPNet's comparison) or "different seeds" (a batch of 2 with share 0.5).

    Unit: the answer (a tie counts half, "both bad" is no preference and is left out, counted);
    interval: bootstrap over prompts; p: one-sided, every answer of a batch flipped together at random (under
    the null the two sides are exchangeable). Per verifier that scored both sides (CLIP's `clip_score`
    included): how often it scores the side people preferred higher, among answers with a winner."""
    out = []
    left, right = pairs["left_noise_source"].astype(object), pairs["right_noise_source"].astype(object)
    same = (pairs["left_seed"] == pairs["right_seed"]).to_numpy()
    for name in sorted((set(left) | set(right)) - {"seed", None}):
        mixed = (((left == name) & (right == "seed")) | ((left == "seed") & (right == name))).to_numpy()
        for pairing, among in (("same seed", same), ("different seeds", ~same)):
            sub = pairs[mixed & among].reset_index(drop=True)
            if sub.empty:
                continue
            on_left = (sub["left_noise_source"].astype(object) == name).to_numpy()
            winner = sub["winner"].astype(object).to_numpy()
            decided = winner != "both_bad"
            score = np.where(winner == "tie", 0.5, np.where((winner == "left") == on_left, 1.0, 0.0))[decided]
            if not len(score):
                continue
            frame = sub[decided].reset_index(drop=True)
            boot = ClusterBootstrap(frame["prompt_id"], None, draws, seed)
            low, high = boot.interval(lambda m: float(np.average(score, weights=m)) if m.sum() else np.nan)
            batches = codes(frame["batch_id"].astype(object).fillna(frame["record_id"].astype(object)))
            rng = np.random.default_rng(seed)
            observed = float(score.mean())
            flips = rng.random((PERMUTATIONS, batches.max() + 1)) < 0.5
            permuted = np.where(flips[:, batches], 1 - score, score).mean(axis=1)
            p = (int((permuted >= observed - 1e-12).sum()) + 1) / (PERMUTATIONS + 1)
            row = {"source": name, "pairing": pairing, "won": observed, "ci_low": low, "ci_high": high, "p": p,
                   "answers": int(decided.sum()), "both_bad": int((~decided).sum()),
                   "prompts": int(frame["prompt_id"].nunique())}
            for column in [c[len("left_"):] for c in sub.columns if c.startswith("left_")
                           and (c == "left_clip_score" or c.startswith("left_score_"))]:
                agreed = pairwise_agreement(sub, column, draws, PERMUTATIONS, seed)
                if agreed["pairs"]:
                    label = "clip" if column == "clip_score" else column.removeprefix("score_")
                    row[f"{label} agrees"] = agreed["pair_agreement"]
                    row[f"{label} agrees 95% CI"] = f"[{agreed['pair_ci_low']:.3f}, {agreed['pair_ci_high']:.3f}]"
            by = "prompt" if "prompt" in frame else "prompt_id"
            row["per_prompt"] = (frame.assign(won=score).groupby(by, sort=False, observed=True)["won"]
                                 .agg(["mean", "size"]).rename(columns={"mean": "won", "size": "answers"})
                                 .reset_index().sort_values("won", ascending=False, kind="stable"))
            out.append(row)
    return out


def verdict(source: dict) -> str:
    """One plain sentence for the summary and the report."""
    significant = source["p"] < 0.05 and source["ci_low"] > 0
    return (f"{source['source']}: golden {source['rate']:.3f} vs plain seeds {source['plain_rate']:.3f} in the same "
            f"judgements, difference {source['difference']:+.3f} [{source['ci_low']:+.3f}, {source['ci_high']:+.3f}] "
            f"(prompts resampled), permutation p {source['p']:.3g} over {source['prompts']} prompts: "
            + ("people preferred it." if significant else "no evidence people preferred it."))
