"""What the report says before any result: the data's design, the caveats that follow from it, and words for
the controls. Every sentence is generated from the data at hand (counts, flags, test results)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import format_p


def _per_record(rows: pd.DataFrame, column: str) -> pd.Series:
    """A per-record column, once per record (its first row; only the two columns copied, not the table)."""
    return rows[["record_id", column]].drop_duplicates("record_id")[column]


def describe(result, rows: pd.DataFrame, pairs: pd.DataFrame, candidates: pd.DataFrame) -> None:
    """The design table the report opens with: how the data were collected, in counts."""
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
              ("Annotators", f"{rows['annotator'].nunique()}: "
                             + ", ".join(sorted(map(str, rows["annotator"].unique())))),
              ("Prompts judged by 2+ annotators", str(int((per_prompt > 1).sum()))),
              ("Second opinions", str(int(_per_record(rows, "second_opinion_of").notna().sum())))]
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


def caveats(result, rows: pd.DataFrame, repeat: bool, prefiltered: bool) -> None:
    """Caveats that follow from the design, and the claims corrected for pre-filtering."""
    c = result.caveats
    n_noises = rows["seed"].nunique()
    if repeat:
        c.append("Seeds repeat across prompts: a seed's answers are not independent, so intervals resample prompts "
                 "and seeds, noise statistics use one row per distinct noise, and the selector is evaluated on "
                 "unseen seeds and unseen prompts (and compared with simply remembering each seed).")
    if n_noises < 30:
        c.append(f"Only {n_noises} distinct noises: every noise-level result rests on {n_noises} independent draws; "
                 "expect wide intervals and little power.")
    if rows["prompt_id"].nunique() < 3:
        c.append("Fewer than 3 prompts: no interval can be drawn by resampling prompts.")
    if prefiltered:
        _prefilter(result, rows)
    if rows["annotator"].nunique() < 2:
        c.append("One annotator: agreement between annotators cannot be measured.")
    elif rows.groupby("prompt_id")["annotator"].nunique().max() < 2:
        c.append("No prompt was judged by two annotators: set an overlap to measure agreement.")
    shown = _per_record(rows, "shown_scores").fillna(False).astype(bool)
    if shown.any():
        c.append(f"CLIP scores were on screen before {int(shown.sum())} of {len(shown)} answers: CLIP agreement may "
                 "reflect annotators reading the score.")


def _prefilter(result, rows: pd.DataFrame) -> None:
    explore = int((rows["slot"] == "explore").sum())
    result.caveats.append(f"Pre-filtered batches: the shown seeds are not a random sample of the generated ones "
                          f"({explore} of {len(rows)} shown rows came from exploration slots). Each figure says "
                          "whether it is weighted to undo the selection or describes the shown seeds only; see the "
                          "list of corrected claims.")
    if explore == 0:
        result.caveats.append("No exploration slot was used: low-ranked candidates were never shown, so no "
                              "weighting can recover them; rates describe the top-ranked seeds only.")
        result.corrected.append("None could be: without exploration slots every shown seed had propensity 1 and "
                                "every hidden one 0, and weights cannot bring back what was never shown. Every "
                                "figure describes the top-ranked seeds only.")
        return
    result.corrected += [
        "Golden rates (overall, per prompt, per annotator): Hajek estimates weighted by 1/propensity; the naive rate "
        "among the shown seeds is given beside the overall one. Intervals resample whole prompts (and seeds where "
        "they repeat), each row keeping its weight.",
        "CLIP agreement: within-judgement AUC with pair weights 1/(p_i p_j) (the pairs that can be seen), and over "
        "all candidates with hidden ones counted by an inverse-propensity-weighted model of P(golden | CLIP); the "
        "naive figure is shown beside them.",
        "Noise statistics: each distinct noise weighted by 1/P(shown in at least one of its batches); its label is "
        "its answers weighted by 1/propensity, centred on the group's weighted rate (a prompt's own weighted rate "
        "rests on one exploration draw). r is the weighted Pearson correlation; its p and 95% interval are a Wald "
        "test on Fisher's z whose standard error resamples whole prompts (and seeds where they repeat); BH and Holm "
        "run over those p-values.",
        "Embeddings: the PCA and the k-means clusters are weighted by the same noise weights, and each cluster's "
        "golden rate by 1/propensity (interval: the same clustered bootstrap).",
        "Seeds across prompts (when seeds repeat): each seed's rate weights its answers by 1/propensity.",
        "Seed selector: trained and evaluated with weights 1/propensity (its own or CLIP's picks do not teach it "
        "their bias).",
        "Among shown seeds, not corrected: agreement between annotators (it is about the seeds both saw, not a "
        "population rate); the t-SNE / UMAP pictures (they place the shown noises); the counts of noises and answers "
        "per cluster; the selector's within-prompt ranking (b), which compares picks among the same shown seeds."]


def selector_caveats(result, evaluation) -> None:
    """Words for what the selector's nulls and figures say: controls off chance, below-chance results, and a
    seed effect that the noise features do not explain."""
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
                                  "its null (1 time in 40 by chance): worse than chance, which the noise cannot "
                                  "explain (the folds or a few seeds); do not read it as a signal.")
    effect = result.parts.get("seed_effect")
    unseen = evaluation.nulls["unseen_auc"]
    if effect and effect["p_value"] < 0.05 and not evaluation.recommended:
        result.caveats.append(
            f"Seeds differ (remembering a seed's rate predicts new prompts, AUC {effect['statistic']:.3f}), but the "
            f"noise features do not predict unseen seeds (AUC {unseen['observed']:.3f}, p "
            f"{format_p(unseen['p_value'])}): the seed effect is not explained by these features, and a selector "
            "trained on them cannot pick good new seeds. Reusing the good seeds themselves can.")
