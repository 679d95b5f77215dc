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
from goldennoise.research.analysis import embedding, figures, pairwise, seeds, stats
from goldennoise.research.analysis.inference import ClusterBootstrap, codes, format_p

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


def _design(result: GroupResult, rows: pd.DataFrame, pairs: pd.DataFrame, candidates: pd.DataFrame) -> None:
    d = result.design
    source = rows if not rows.empty else pairs
    d.append(("Campaign", ", ".join(map(str, sorted(source["campaign"].unique())))))
    d.append(("Configuration", "; ".join(sorted(source["configuration_label"].unique()))
              + f" (id {', '.join(sorted(source['configuration'].unique()))})"))
    d.append(("Seed strategy", ", ".join(sorted(map(str, source["seed_strategy"].dropna().unique()))) or "unknown"))
    if not rows.empty:
        per_seed = rows.groupby("seed")["prompt_id"].nunique()
        per_prompt = rows.groupby("prompt_id")["annotator"].nunique()
        d += [("Judgements", f"{rows['record_id'].nunique()} ({len(rows)} seeds judged)"),
              ("Distinct noises (seeds)", str(rows["seed"].nunique())),
              ("Prompts", str(rows["prompt_id"].nunique())),
              ("Prompts per seed", f"{per_seed.min()}-{per_seed.max()} (median {per_seed.median():g})"),
              ("Annotators", f"{rows['annotator'].nunique()}: {', '.join(sorted(map(str, rows['annotator'].unique())))}"),
              ("Prompts judged by 2+ annotators", str(int((per_prompt > 1).sum()))),
              ("Second opinions", str(int(rows.drop_duplicates("record_id")["second_opinion_of"].notna().sum())))]
        part = candidates[candidates["record_id"].isin(set(rows["record_id"]))] if not candidates.empty else candidates
        if part.empty:
            d.append(("Pre-filter", "none: every generated seed was shown"))
        else:
            per_record = part.groupby("record_id").agg(n=("seed", "size"), shown=("shown", "sum"),
                                                       explore=("slot", lambda s: int((s == "explore").sum())))
            ranked = rows[rows["prefiltered"]]
            by_clip = np.allclose(ranked["rank_score"].astype(float), ranked["clip_score"].astype(float),
                                  equal_nan=True)
            methods = "ranked by CLIP score" if by_clip else "ranked by the seed selector"
            d.append(("Pre-filter", f"{per_record['shown'].median():g} of {per_record['n'].median():g} candidates "
                                    f"shown per judgement, {per_record['explore'].median():g} by exploration "
                                    f"({methods}); {int(rows['prefiltered'].sum())} of {len(rows)} rows"))
    d.append(("Pairwise answers", str(len(pairs))))


def analyse(key: str, rows: pd.DataFrame, pairs: pd.DataFrame, candidates: pd.DataFrame,
            features: dict[str, pd.DataFrame], with_selector: bool = True, umap: bool = False, seed: int = 0,
            permutations: int = seed_selector.PERMUTATIONS) -> GroupResult:
    source = rows if not rows.empty else pairs
    labels = sorted(source["configuration_label"].unique())
    result = GroupResult(key, f"{key} ({'; '.join(labels)})",
                         configuration=source["configuration"].iloc[0] if source["configuration"].nunique() == 1
                         else None)
    _design(result, rows, pairs, candidates)
    if not rows.empty:
        _judgements(result, rows, candidates, features, with_selector, umap, seed, permutations)
    if not pairs.empty:
        _pairwise(result, pairs, seed)
    return result


def _judgements(result, rows, candidates, features, with_selector, umap, seed, permutations) -> None:
    repeat = bool(rows.groupby("seed")["prompt_id"].nunique().max() > 1)
    boot = ClusterBootstrap(rows["prompt_id"], rows["seed"] if repeat else None, DRAWS, seed)
    prefiltered = bool(rows["prefiltered"].any())
    _caveats(result, rows, repeat, prefiltered)
    rates = stats.golden_rates(rows, boot)
    result.parts["rates"] = rates
    result.figures["rates"] = (figures.rates(rates["per_prompt"], rates["per_annotator"]), "Golden rates")
    o = rates["overall"]
    result.summary.append(f"golden rate {o['rate']:.3f} [{o['ci_low']:.3f}, {o['ci_high']:.3f}] ({boot.described})"
                          + (f"; naive rate among shown seeds {o['naive_rate']:.3f}" if prefiltered else ""))
    part = candidates[candidates["record_id"].isin(set(rows["record_id"]))] if not candidates.empty else None
    clip = stats.clip_agreement(rows, boot, part)
    result.parts["clip"] = clip
    if clip.get("judgements_used"):
        result.figures["clip"] = (figures.clip_scores(rows), "CLIP scores of golden and bad seeds")
        every = clip.get("all_candidates", {})
        result.summary.append(
            f"CLIP agreement (within-judgement AUC) {clip['auc']:.3f} [{clip['ci_low']:.3f}, {clip['ci_high']:.3f}]"
            + (f" weighted by 1/propensity; naive {clip['naive_auc']:.3f}" if clip["weighted"] else "")
            + (f"; over all candidates (model-assisted) {every['auc']:.3f} [{every.get('ci_low', np.nan):.3f}, "
               f"{every.get('ci_high', np.nan):.3f}]" if np.isfinite(every.get("auc", np.nan)) else ""))
    result.parts["agreement"] = stats.agreement(rows, DRAWS, seed)
    if repeat:
        _seed_effects(result, rows, seed, permutations)
    shape = rows["noise_shape"].dropna().mode()
    table = features.get(shape.iloc[0]) if len(shape) else None
    if table is None:
        result.notes.append("Noise analyses: no verified noise in this group.")
        return
    noisy = rows[(rows["noise_shape"] == shape.iloc[0]) & rows["seed"].isin(table.index)]
    if len(noisy) < len(rows):
        result.caveats.append(f"Noise analyses use the {len(noisy)} of {len(rows)} rows with noise shape "
                              f"{shape.iloc[0]} (different models or sizes are not comparable).")
    _noise(result, noisy, table, repeat, with_selector, umap, seed, permutations)


def _caveats(result, rows, repeat, prefiltered) -> None:
    c = result.caveats
    n_noises = rows["seed"].nunique()
    if repeat:
        c.append("Seeds repeat across prompts: a seed's answers are not independent, so intervals resample prompts "
                 "and seeds, noise statistics use one row per distinct noise, and the selector is evaluated on "
                 "unseen seeds and unseen prompts (and compared with simply remembering each seed).")
    if n_noises < 30:
        c.append(f"Only {n_noises} distinct noises: every noise-level result rests on {n_noises} independent draws; "
                 "expect wide intervals and little power.")
    if prefiltered:
        explore = int((rows["slot"] == "explore").sum())
        c.append(f"Pre-filtered batches: the shown seeds are not a random sample of the generated ones "
                 f"({explore} of {len(rows)} shown rows came from exploration slots). Claims are weighted by "
                 "1/propensity; see the list of corrected claims.")
        if explore == 0:
            c.append("No exploration slot was used: low-ranked candidates were never shown, so no weighting can "
                     "recover them; rates describe the top-ranked seeds only.")
        result.corrected += [
            "Golden rates (overall, per prompt, per annotator): Hajek estimates weighted by 1/propensity.",
            "CLIP agreement: within-judgement AUC with pair weights 1/(p_i p_j) (the pairs that can be seen), and "
            "over all candidates with hidden ones counted by an inverse-propensity-weighted model of P(golden | "
            "CLIP); the naive figure is shown beside them.",
            "Per-seed rates, noise statistics and clusters: answers weighted by 1/propensity within each seed.",
            "Seed selector: trained and evaluated with weights 1/propensity (its own or CLIP's picks do not teach it "
            "their bias); (b) ranks only the shown seeds (hidden candidates have no answer).",
            "Not corrected: agreement between annotators (it is about the seeds both saw, not a population rate)."]
    if rows["annotator"].nunique() < 2:
        c.append("One annotator: agreement between annotators cannot be measured.")
    elif rows.groupby("prompt_id")["annotator"].nunique().max() < 2:
        c.append("No prompt was judged by two annotators: set an overlap to measure agreement.")
    shown = rows.drop_duplicates("record_id")["shown_scores"].fillna(False).astype(bool)
    if shown.any():
        c.append(f"CLIP scores were on screen before {int(shown.sum())} of {len(shown)} answers: CLIP agreement may "
                 "reflect annotators reading the score.")


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


def _noise(result, rows, table, repeat, with_selector, umap, seed, permutations) -> None:
    seeds_ = np.sort(rows["seed"].unique())
    F = table.loc[seeds_]
    if len(seeds_) < MIN_NOISES or rows["golden"].nunique() < 2:
        result.notes.append(f"Noise statistics, embeddings and the selector need {MIN_NOISES}+ distinct noises with "
                            f"golden and bad answers; have {len(seeds_)}.")
        return
    noise_stats = stats.noise_statistics(F, stats.seed_labels(rows))
    result.parts["noise_stats"] = noise_stats
    result.figures["forest"] = (figures.forest(noise_stats), "Noise statistics (forest plot)")
    significant = int((noise_stats["q_value"] < 0.05).sum())
    result.summary.append(f"noise features: {significant} of {len(noise_stats)} significant at BH q < 0.05 over "
                          f"{len(seeds_)} distinct noises (smallest Holm p {format_p(noise_stats['p_holm'].min())})")
    boot = ClusterBootstrap(rows["prompt_id"], rows["seed"] if repeat else None, DRAWS, seed)
    if len(seeds_) >= 10:
        coords, explained = embedding.projection(F.to_numpy(), seed)
        label = stats.seed_labels(rows).reindex(seeds_).to_numpy()
        points, keep = embedding.tsne(coords, seed)
        result.figures["tsne"] = (figures.scatter(points, label[keep], f"t-SNE of {len(keep)} of {len(seeds_)} "
                                                  "distinct noises (PCA of features)"), "t-SNE of noise features")
        _, clusters = embedding.clusters(coords, seeds_, rows, boot, seed=seed)
        result.parts["clusters"] = clusters
        result.parts["pca_explained"] = float(explained.sum())
        if umap:
            try:
                points, keep = embedding.umap(coords, seed)
                result.figures["umap"] = (figures.scatter(points, label[keep], "UMAP of distinct noises (PCA of "
                                                          "features)"), "UMAP of noise features")
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
    result.figures["nulls"] = (figures.nulls(evaluation.nulls), "Selector: permutation nulls")
    _control_words(result, evaluation)
    a = evaluation.table.iloc[0]
    result.summary.append(f"seed selector on unseen seeds: AUC {a['estimate']:.3f} [{a['ci_low']:.3f}, "
                          f"{a['ci_high']:.3f}], permutation p {a['p']}; "
                          + ("recommended for pre-filtering" if evaluation.recommended
                             else "not recommended for pre-filtering (not above chance)"))


def _control_words(result, evaluation) -> None:
    for name, entry in evaluation.nulls.items():
        null = np.asarray(entry["null"], dtype=float)
        null = null[np.isfinite(null)]
        if not len(null):
            continue
        low, high = np.percentile(null, [2.5, 97.5])
        if not low <= entry["chance"] <= high:
            result.caveats.append(f"Control missed its expected value: the null of {entry['label']} spans "
                                  f"{low:.3f}-{high:.3f}, which excludes chance ({entry['chance']:g}); the "
                                  "evaluation itself is biased, read its figures with care.")
        if entry["observed"] < low:
            result.caveats.append(f"{entry['label']}: the observed value {entry['observed']:.3f} lies below 97.5% of "
                                  "its null: worse than chance, which the noise cannot explain (an artefact of the "
                                  "folds or of a few seeds); do not read it as a signal.")


def _pairwise(result, pairs, seed) -> None:
    out = pairwise.analyse(pairs, draws=500, seed=seed)
    result.parts["pairwise"] = out
    if "log_strength" in out["table"]:
        result.figures["pairwise"] = (figures.strengths(out["table"]), "Pairwise: Bradley-Terry strengths")
    result.summary.append(f"pairwise: {out['answers']} answers ({out['decided']} with a preference, {out['ties']} "
                          f"ties, {out['both_bad']} both bad) over {out['seeds']} seeds")
