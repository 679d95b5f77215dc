"""Every analysis of one (campaign, configuration) group, in the order the report shows them.

`analyse` takes the group's judgement rows and pairwise rows and the verified
noise features, and returns a `GroupResult`: the design, caveats drawn from the
data, each section's tables and figures, the trained selector, and plain-text
summary lines. Each part that needs more data than the group has is skipped with
a note saying what it needs, never shown as an empty figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from goldennoise.research import selector as seed_selector
from goldennoise.research.analysis import design, embedding, figures, ipw, pairwise, seeds, sources, stats
from goldennoise.research.analysis import verifiers as verifier_agreement
from goldennoise.research.analysis.inference import ClusterBootstrap, codes, format_ci, format_p

DRAWS = 1000
MIN_NOISES = 8


@dataclass
class GroupResult:
    key: str
    label: str
    configuration: str | None = None
    design: list[tuple[str, str]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    figures: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (png, title)
    parts: dict = field(default_factory=dict)  # section results (tables, dicts) for the report
    selector: object | None = None
    evaluation: object | None = None


def analyse(key: str, rows: pd.DataFrame, pairs: pd.DataFrame, candidates: pd.DataFrame,
            features: dict[str, pd.DataFrame], with_selector: bool = True, umap: bool = False, seed: int = 0,
            permutations: int = seed_selector.PERMUTATIONS) -> GroupResult:
    source = rows if not rows.empty else pairs
    labels = sorted(source["configuration_label"].unique())
    result = GroupResult(key, f"{key} ({'; '.join(labels)})",
                         configuration=source["configuration"].iloc[0] if source["configuration"].nunique() == 1
                         else None)
    all_rows, all_pairs = rows, pairs
    if not rows.empty and sources.present(rows):
        _sources(result, rows, seed)
        rows = rows[rows["noise_source"].astype(object) == "seed"].reset_index(drop=True)  # the seeds' own noises
    if not pairs.empty and "left_noise_source" in pairs:
        compared = sources.pairwise(pairs, DRAWS, seed)
        if compared:
            result.parts["sources_pairwise"] = [{k: v for k, v in c.items() if k != "per_prompt"} for c in compared]
            result.parts["sources_pairwise_per_prompt"] = {f"{c['source']}, {c['pairing']}": c["per_prompt"]
                                                           for c in compared}
            for c in compared:
                result.summary.append(
                    f"noise source {c['source']} in pairwise answers against a plain candidate ({c['pairing']}): won "
                    f"{c['won']:.3f} "
                    f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] of {c['answers']} answers with a preference (ties half; "
                    f"prompts resampled), p {c['p']:.3g} against 0.5 ({c['both_bad']} both bad, left out)")
        plain = ((pairs["left_noise_source"].astype(object) == "seed")
                 & (pairs["right_noise_source"].astype(object) == "seed")).to_numpy()
        if not plain.all():
            result.caveats.append(f"{int((~plain).sum())} of {len(pairs)} pairwise answers had a candidate from a "
                                  "noise source: the pairwise analysis of seeds uses the others only.")
            pairs = pairs[plain].reset_index(drop=True)
    design.describe(result, all_rows, all_pairs, candidates)  # every answer analysed, sourced ones included
    if not rows.empty:
        _judgements(result, rows, candidates, features, with_selector, umap, seed, permutations)
    if not pairs.empty:
        _pairwise(result, pairs, seed)
    _verifiers(result, rows, pairs, seed, permutations)
    return result


def _sources(result, rows, seed) -> None:
    """Candidates from a noise source against plain seeds in the same judgements (`sources`)."""
    out = sources.analyse(rows, DRAWS, seed)
    result.parts["sources"] = out
    kept = int((rows["noise_source"].astype(object) == "seed").sum())
    result.caveats.append(f"{len(rows) - kept} judged candidates started from a noise source, not their seed's "
                          f"draw: they are compared with plain seeds under 'Noise sources' and left out of every "
                          f"other analysis, which uses the {kept} plain candidates.")
    for source in out["sources"]:
        result.summary.append(f"noise source {sources.verdict(source)}")


def _verifiers(result, rows, pairs, seed, permutations) -> None:
    """Which automatic verifier agrees best with the people of this group (when one beside CLIP scored it)."""
    names = verifier_agreement.present(rows if not rows.empty else None, pairs if not pairs.empty else None)
    if not any(name != "clip" for name in names):
        return
    if rows.empty:
        boot = ClusterBootstrap(pairs["prompt_id"], None, DRAWS, seed)
    else:
        repeat = bool(rows.groupby("seed")["prompt_id"].nunique().max() > 1)
        boot = ClusterBootstrap(rows["prompt_id"], rows["seed"] if repeat else None, DRAWS, seed)
    out = verifier_agreement.analyse(rows, pairs if not pairs.empty else None, names, boot, permutations, seed)
    out["bootstrap"] = boot.described
    result.parts["verifiers"] = out
    if not out["table"].empty:
        result.figures["verifiers"] = (figures.verifiers(out["table"]), "Verifiers vs people")
    result.summary.append(f"verifiers: {out['verdict']}")


def _judgements(result, rows, candidates, features, with_selector, umap, seed, permutations) -> None:
    repeat = bool(rows.groupby("seed")["prompt_id"].nunique().max() > 1)
    boot = ClusterBootstrap(rows["prompt_id"], rows["seed"] if repeat else None, DRAWS, seed)
    prefiltered = bool(rows["prefiltered"].any())
    result.parts["prefiltered"] = prefiltered
    design.caveats(result, rows, repeat, prefiltered)
    rates = stats.golden_rates(rows, boot)
    result.parts["rates"] = rates
    result.figures["rates"] = (figures.rates(rates["per_prompt"], rates["per_annotator"]), "Golden rates")
    o = rates["overall"]
    result.summary.append(f"golden rate {o['rate']:.3f} {format_ci(o['ci_low'], o['ci_high'])} ({boot.described})"
                          + (f"; naive rate among shown seeds {o['naive_rate']:.3f}" if prefiltered else ""))
    part = candidates[candidates["record_id"].isin(set(rows["record_id"]))] if not candidates.empty else None
    clip = stats.clip_agreement(rows, boot, part)
    result.parts["clip"] = clip
    if clip.get("judgements_used"):
        result.figures["clip"] = (figures.clip_scores(rows), "CLIP scores of golden and bad seeds")
        every = clip.get("all_candidates", {})
        if np.isfinite(every.get("auc", np.nan)):
            result.summary.append(
                f"CLIP agreement over all candidates (within-judgement AUC, hidden ones by an inverse-propensity-"
                f"weighted model) {every['auc']:.3f} {format_ci(every['ci_low'], every['ci_high'])}; among the shown: "
                f"naive {clip['naive_auc']:.3f}, pair-weighted {clip['auc']:.3f} (pairs with a top-ranked seed)")
        else:
            result.summary.append(
                f"CLIP agreement (within-judgement AUC) {clip['auc']:.3f} {format_ci(clip['ci_low'], clip['ci_high'])}"
                + (f" weighted by 1/propensity; naive {clip['naive_auc']:.3f}" if clip["weighted"] else ""))
    result.parts["agreement"] = stats.agreement(rows, DRAWS, seed)
    if repeat:
        _seed_effects(result, rows, seed, permutations)
    shape = rows["noise_shape"].dropna().mode()
    table = features.get(shape.iloc[0]) if len(shape) else None
    if table is None:
        result.notes.append("Noise analyses: no verified noise in this group.")
        return
    usable = ((rows["noise_shape"] == shape.iloc[0]) & rows["seed"].isin(table.index)).to_numpy()
    noisy = rows if usable.all() else rows[usable]  # not a copy of every row when every row has the shape
    if len(noisy) < len(rows):
        result.caveats.append(f"Noise analyses use the {len(noisy)} of {len(rows)} rows with noise shape "
                              f"{shape.iloc[0]} (different models or sizes are not comparable).")
    _noise(result, noisy, table, part, repeat, with_selector, umap, seed, permutations)


def _seed_effects(result, rows, seed, permutations) -> None:
    table, prior = seeds.seed_table(rows)
    split = seeds.split_half(rows, seed=seed)
    result.parts.update(seed_table=table, prior=prior, split=split)
    result.figures["seeds"] = (figures.seeds(table, split if split.get("splits") else None), "Seeds across prompts")
    try:
        effect = seeds.seed_effect(codes(rows["seed"]), codes(rows["prompt_id"]), rows["golden"].to_numpy(int),
                                   rows["weight"].to_numpy(float), permutations, seed)
    except ValueError as error:  # a prompt fold with one class: roc_auc undefined
        result.notes.append(f"Seed-effect test skipped: {str(error).splitlines()[0]}")
        return
    result.parts["seed_effect"] = effect
    verdict = "seeds differ" if effect["p_value"] < 0.05 else "no evidence that seeds differ"
    result.summary.append(f"seed effect (remember-the-seed AUC on new prompts {effect['statistic']:.3f}, labels "
                          f"permuted within prompt: p {format_p(effect['p_value'])}): {verdict}")


def _noise(result, rows, table, candidates, repeat, with_selector, umap, seed, permutations) -> None:
    seeds_ = np.sort(rows["seed"].unique())
    F = table.loc[seeds_]
    if len(seeds_) < MIN_NOISES or rows["golden"].nunique() < 2:
        answer = "golden" if rows["golden"].all() else "bad"
        lacking = (f"{MIN_NOISES}+ distinct noises (have {len(seeds_)})" if len(seeds_) < MIN_NOISES
                   else f"both golden and bad answers (all {len(rows)} are {answer})")
        result.notes.append(f"Noise statistics, embeddings and the selector skipped: they need {lacking}.")
        return
    boot = ClusterBootstrap(rows["prompt_id"], rows["seed"] if repeat else None, DRAWS, seed)
    labels = stats.seed_labels(rows)
    weights = ipw.seed_weights(rows, candidates).reindex(seeds_)
    weighted = bool((weights != 1).any())
    result.parts.update(noise_weighted=weighted, noise_effective=stats.kish(weights), noise_draws=boot.draws)
    if not weighted:
        noise_stats = stats.noise_statistics(F, labels)
    elif ipw.testable(boot):
        reps = ipw.replicates(rows, stats.centred_answers(rows), seeds_, weights.to_numpy(float), boot)
        noise_stats = stats.noise_statistics(F, labels, weights, reps)
    else:
        noise_stats = None
        result.notes.append("Noise statistics skipped: under a pre-filter their standard errors resample prompts, "
                            "and this group has fewer than 3.")
    if noise_stats is not None:
        result.parts["noise_stats"] = noise_stats
        result.figures["forest"] = (figures.forest(noise_stats, weighted), "Noise statistics (forest plot)")
        significant = int((noise_stats["q_value"] < 0.05).sum())
        how = (f"weighted by 1/P(shown), effective {stats.kish(weights):.0f}; Wald test, clustered-bootstrap SE"
               if weighted else "among the top-ranked shown seeds, not corrected" if result.parts["prefiltered"]
               else "unweighted: every generated seed was shown")
        result.summary.append(f"noise features: {significant} of {len(noise_stats)} significant at BH q < 0.05 over "
                              f"{len(seeds_)} distinct noises ({how}; smallest Holm p "
                              f"{format_p(noise_stats['p_holm'].min())})")
    if len(seeds_) >= 10:
        w = weights.to_numpy(float) if weighted else None
        coords, explained = embedding.projection(F.to_numpy(), seed, w)
        label = labels.reindex(seeds_).to_numpy()
        points, keep = embedding.tsne(coords, seed)
        shown = f"all {len(seeds_)}" if len(keep) == len(seeds_) else f"{len(keep)} of {len(seeds_)} (seeded sample)"
        among = "; the shown seeds, not weighted" if weighted else ""
        result.figures["tsne"] = (figures.scatter(points, label[keep], f"t-SNE of the noise features' PCA, {shown} "
                                                  f"distinct noises{among}"), "t-SNE of noise features")
        _, clusters = embedding.clusters(coords, seeds_, rows, boot, seed=seed, weights=w)
        result.parts["clusters"] = clusters
        result.parts["pca_explained"] = float(explained.sum())
        if umap:
            try:
                points, keep = embedding.umap(coords, seed)
                result.figures["umap"] = (figures.scatter(points, label[keep], f"UMAP of the noise features' PCA, "
                                                          f"{shown} distinct noises{among}"), "UMAP of noise features")
            except ImportError as error:
                result.notes.append(str(error))
    if with_selector:
        _selector(result, rows, F, seeds_, permutations, seed)


def _selector(result, rows, F, seeds_, permutations, seed) -> None:
    index = pd.Series(np.arange(len(seeds_)), index=seeds_)
    data = seed_selector.Rows(features=F.to_numpy(float), seed=index.loc[rows["seed"]].to_numpy(),
                              prompt=codes(rows["prompt_id"]), judgement=codes(rows["record_id"]),
                              y=rows["golden"].to_numpy(int), w=rows["weight"].to_numpy(float))
    why = seed_selector.usable(data)
    if why:
        result.notes.append(f"Seed selector not trained: {why}.")
        return
    evaluation = seed_selector.evaluate(data, permutations, DRAWS, seed, result.parts.get("seed_effect"))
    result.evaluation = evaluation
    shape = [int(v) for v in rows["noise_shape"].iloc[0].split("x")]
    result.selector = seed_selector.train(data, list(F.columns), shape, result.configuration, evaluation)
    if result.configuration is None:
        result.notes.append("Seed selector evaluated but not saved: this group pools several generation "
                            "configurations, and a selector is only valid for the one it was trained on.")
    result.figures["nulls"] = (figures.nulls(evaluation.nulls), "Selector: permutation nulls")
    design.selector_caveats(result, evaluation)
    a = evaluation.table.iloc[0]
    result.summary.append(f"seed selector on unseen seeds: AUC {a['estimate']:.3f} "
                          f"{format_ci(a['ci_low'], a['ci_high'])}, permutation p {a['p']}; "
                          + ("recommended for pre-filtering" if evaluation.recommended
                             else "not recommended for pre-filtering (not above chance)"))


def _pairwise(result, pairs, seed) -> None:
    out = pairwise.analyse(pairs, draws=500, seed=seed)
    out["answers_table"] = pairs[["created_at", "annotator", "prompt", "left_seed", "right_seed", "winner",
                                  "left_clip_score", "right_clip_score", "record_id"]]
    result.parts["pairwise"] = out
    if "log_strength" in out["table"]:
        result.figures["pairwise"] = (figures.strengths(out["table"]), "Pairwise: Bradley-Terry strengths")
    preferred = out["decided"] - out["ties"]  # "decided" counts the ties (half a win each) too
    result.summary.append(f"pairwise: {out['answers']} answers ({preferred} with a preference, {out['ties']} "
                          f"tie{'' if out['ties'] == 1 else 's'}, {out['both_bad']} both bad) over {out['seeds']} "
                          "seeds")
