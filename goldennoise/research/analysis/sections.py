"""The report's sections after the design and caveats: what each figure and table is, in words, then it."""

from __future__ import annotations

import html

from goldennoise.ids import slug
from goldennoise.research.analysis.inference import format_ci, format_p
from goldennoise.research.analysis.sources import verdict
from goldennoise.research.analysis.html import figure as _figure
from goldennoise.research.analysis.html import table


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _rates(result, folder) -> list[str]:
    rates = result.parts.get("rates")
    if not rates:
        return []
    o = rates["overall"]
    return ["<h2>Golden rates</h2>",
            _p(f"Golden rate {o['rate']:.3f}, 95% interval {format_ci(o['ci_low'], o['ci_high'])} over {o['rows']} "
               f"judged seeds in {o['judgements']} judgements (bootstrap over whole prompts, and seeds where they "
               f"repeat; pre-filtered rows weighted by 1/propensity). Naive rate among the shown seeds: "
               f"{o['naive_rate']:.3f}."),
            _figure(result, "rates"),
            table(rates["per_annotator"], "Golden rate per annotator (interval: clustered bootstrap)", folder,
                  "per_annotator"),
            table(rates["per_prompt"], "Golden rate per prompt, highest first (golden: answers; rate weighted by "
                  "1/propensity where pre-filtered; interval: Wilson over the prompt's distinct seeds)", folder,
                  "per_prompt", ranked_by="golden rate")]


def _clip(result, folder) -> list[str]:
    clip = result.parts.get("clip")
    if not clip:
        return []
    if not clip.get("judgements_used"):
        return ["<h2>CLIP agreement</h2>", _p(f"Not measured: {clip['note']}.")]
    return ["<h2>CLIP agreement</h2>",
            _p(f"Within-judgement AUC {clip['auc']:.3f} {format_ci(clip['ci_low'], clip['ci_high'])} over "
               f"{clip['judgements_used']} judgements with golden and bad seeds: the chance that a golden seed has a "
               "higher CLIP score than a bad seed of the same judgement (0.5 = no agreement)."
               + (f" Pairs weighted by 1/(p_i p_j), the inverse of their chance to be shown together; naive "
                  f"{clip['naive_auc']:.3f}. With one exploration slot two low-ranked candidates are never shown "
                  "together, so this figure covers pairs with a top-ranked candidate." if clip["weighted"] else "")),
            _every(clip.get("all_candidates")),
            _figure(result, "clip")]


def _every(every) -> str:
    if not every or not every.get("candidates"):
        return ""
    return _p(f"Over all {every['candidates']} candidates of the pre-filtered judgements ({every['hidden']} hidden), "
              f"as if nothing had been filtered: AUC {every['auc']:.3f} "
              f"{format_ci(every.get('ci_low'), every.get('ci_high'))}. Hidden candidates count by P(golden | CLIP "
              "score) from a logistic model fitted on the shown ones with weights 1/propensity (the exploration "
              "slots show the low-ranked region); the figure rests on that model.")


def _agreement(result, folder) -> list[str]:
    frame = result.parts.get("agreement")
    if frame is None:
        return []
    return ["<h2>Agreement between annotators</h2>",
            _p("Only the same seed of the same prompt in this configuration, judged by both (overlap assignments and "
               "second opinions). Cohen's kappa (sklearn) is undefined when an annotator gave one answer to every "
               "shared seed." + (" Among shown seeds, not corrected for the pre-filter: it is about the seeds both "
                                 "annotators saw." if result.parts.get("prefiltered") else "")),
            table(frame, "Annotator pairs", folder, "agreement")]


def _seeds(result, folder) -> list[str]:
    if "seed_table" not in result.parts:
        return []
    prior, split = result.parts["prior"], result.parts["split"]
    out = ["<h2>Seeds across prompts</h2>",
           _p(f"Beta-binomial prior over seeds: mean {prior['mean']:.3f}, between-seed SD of true rates "
              f"{prior['between_seed_sd']:.3f}" + (" (no between-seed spread: every seed shrinks to the mean)"
                                                   if prior["flat"] else "") + ". Shrunk-rate intervals are "
              "empirical-Bayes posterior intervals that treat this fitted prior as known: somewhat narrower "
              "than a full 95%.")]
    if split.get("splits"):
        out.append(_p(f"Split-half replication over {split['splits']} random halvings of the prompts: Spearman rho "
                      f"between halves {split['rho_mean']:.3f} (middle 95% of halvings {split['rho_range'][0]:.3f} to "
                      f"{split['rho_range'][1]:.3f}; a spread over splits, not a confidence interval). The top quarter "
                      f"of seeds on half A scores {split['top_quarter_rate_on_b']:.3f} on half B, all seeds "
                      f"{split['all_rate_on_b']:.3f}."))
    effect = result.parts.get("seed_effect")
    if effect:
        out.append(_p(f"Seed-effect test: remembering each seed's rate predicts held-out prompts with AUC "
                      f"{effect['statistic']:.3f} (mean over {effect['folds']} prompt folds); with labels permuted "
                      f"within prompt ({effect['permutations']} permutations) p = {format_p(effect['p_value'])}."))
    out += [_figure(result, "seeds"),
            table(result.parts["seed_table"], "Every seed, by shrunk golden rate", folder, "seeds",
                  ranked_by="shrunk rate")]
    return out


def _noise(result, folder) -> list[str]:
    stats = result.parts.get("noise_stats")
    if stats is None:
        return []
    noises = int(stats["noises"].iloc[0])
    if result.parts.get("noise_weighted"):
        how = (f"One row per distinct noise ({noises}; effective number {result.parts['noise_effective']:.0f}), "
               "weighted by 1/P(shown in at least one of its batches) to undo the pre-filter; its label is the mean "
               "of its answers weighted by 1/propensity, centred on the group's weighted golden rate. r: weighted "
               "Pearson correlation. p and 95% interval: Wald test on Fisher's z, its standard error from "
               f"{result.parts['noise_draws']} bootstrap draws that resample whole prompts (and seeds where they "
               "repeat), each draw re-forming every noise's label and weight. ")
    else:
        shown = ("among shown seeds, not corrected: without exploration slots the pre-filter showed only the "
                 "top-ranked seeds, and no weight can bring back the others" if result.parts.get("prefiltered")
                 else "every generated seed was shown, so nothing is weighted")
        how = (f"One row per distinct noise ({noises}), its label the mean of its prompt-centred answers; {shown}. "
               "Pearson r per feature with its 95% interval and p (scipy). ")
    return ["<h2>Noise statistics</h2>",
            _p(how + f"q: Benjamini-Hochberg over all {len(stats)} features; p_holm: Holm family-wise adjusted p. "
                     "Read q, not p."),
            _figure(result, "forest"),
            table(stats, "Every noise feature, smallest p first", folder, "noise_statistics", ranked_by="p")]


def _selector(result, folder) -> list[str]:
    out = ["<h2>Seed selector</h2>"]
    evaluation = result.evaluation
    if evaluation is None:
        return out + [_p("Not evaluated (see the notes).")]
    out += [_p("Held-out figures only, each answering one question: (a) on seeds it never saw (and, where seeds "
               "repeat, prompts it never saw); (b) ranking within a judgement as pre-filtering uses it; (c) on new "
               "prompts with seen seeds, next to simply remembering each seed. p-values: permutation tests whose "
               "permutation matches the claim. Intervals: clustered bootstrap."),
            table(evaluation.table.drop(columns=["p_value"]), "Selector evaluation", folder, "selector"),
            _p(("Recommended for pre-filtering: " if evaluation.recommended else "Not recommended for pre-filtering: ")
               + "; ".join(evaluation.reasons) + "."),
            _figure(result, "nulls")]
    return out


def _embedding(result, folder) -> list[str]:
    if "clusters" not in result.parts:
        return []
    weighted = result.parts.get("noise_weighted")
    return ["<h2>Embeddings of the noises</h2>",
            _p(f"t-SNE and k-means run on a PCA of the standardized noise features (the first components explain "
               f"{result.parts['pca_explained']:.0%} of their variance), one point per distinct noise. The noises are "
               "i.i.d. Gaussian draws: any shape in the picture is not structure; the cluster table is the number to "
               "read."
               + (" Under the pre-filter the PCA and k-means are weighted by each noise's 1/P(shown) and each "
                  "cluster's golden rate by 1/propensity (interval: bootstrap over whole prompts, and seeds where "
                  "they repeat); the pictures and the counts of noises and answers are among the shown seeds, not "
                  "corrected." if weighted else
                  " Cluster intervals: bootstrap over whole prompts (and seeds where they repeat).")),
            _figure(result, "tsne"), _figure(result, "umap"),
            table(result.parts["clusters"], "k-means clusters of distinct noises", folder, "clusters")]


def _pairwise(result, folder) -> list[str]:
    out = result.parts.get("pairwise")
    if not out:
        return []
    text = (f"{out['answers']} pairwise answers: {out['decided']} with a preference ({out['ties']} ties, counted as "
            f"half a win each), {out['both_bad']} both bad (no preference: left out of win rates and the model, "
            "counted per seed). Bradley-Terry log-strengths with a weak prior; intervals resample prompts.")
    parts = ["<h2>Pairwise comparisons</h2>", _p(text)]
    side = out.get("left_share")
    if side:
        parts.append(_p(f"Position check: the left image won {side['share']:.3f} [{side['ci_low']:.3f}, "
                        f"{side['ci_high']:.3f}] of decided non-tie answers (binomial p {format_p(side['p_value'])}; "
                        "0.5 = no position bias)."))
    return parts + [_figure(result, "pairwise"), table(out["table"], "Every compared seed", folder, "pairwise"),
                    table(out["answers_table"], "Every pairwise answer", folder, "pairwise_answers")]


def _verifiers(result, folder) -> list[str]:
    out = result.parts.get("verifiers")
    if not out:
        return []
    text = ("Each automatic verifier scored every image when it was made. Within-judgement AUC: the chance that a "
            "golden seed outscores a bad seed of the same judgement (0.5 = chance; pairs weighted by 1/propensity "
            "under a pre-filter). Top-1: how often the verifier's best shown seed was golden, beside a random pick "
            "among the same seeds. Pairs: the share of decided pairwise answers whose winner the verifier scores "
            f"higher. Intervals: {out['bootstrap']}. p: one-sided permutation tests (scores shuffled within each "
            "judgement; pairwise preferences flipped), Holm-adjusted across verifiers. Only the order of scores "
            "counts, so scales do not need to match.")
    shown = [c for c in ("verifier", "measure", "primary", "primary_ci_low", "primary_ci_high", "p_holm", "auc",
                         "judgements", "top1", "chance", "difference", "pair_agreement", "pairs")
             if c in out["table"]]
    parts = ["<h2>Verifiers vs people</h2>", _p(text), _p(out["verdict"]), _figure(result, "verifiers"),
             table(out["table"][shown], "Every verifier's agreement with people", folder, "verifiers")]
    if not out["correlation"].empty:
        parts.append(table(out["correlation"].round(3).reset_index(names="verifier"),
                           "Rank correlation between verifiers (within prompt)", folder, "verifier_correlation"))
    return parts


PAIRWISE_TEXT = ("Pairwise answers with one side from a noise source and the other a plain seed, in a random order, "
                 "unannounced: how often the sourced side won (a tie counts half; 'both bad' is no preference and is "
                 "left out). Interval: bootstrap over prompts; p: one-sided, every answer of a pair flipped together "
                 "at random. Pairing 'same seed': one seed's draw x_T against the source's noise x'_T made from it, "
                 "NPNet's comparison (`[noise] pairing = \"same_seed\"`); 'different seeds': two seeds of one batch. "
                 "'<verifier> agrees': among answers with a winner, how often that verifier scored the winner higher "
                 "(0.5 = chance; interval: prompts resampled).")


def _sources(result, folder) -> list[str]:
    import pandas as pd  # lazy as the rest of the analysis

    out = result.parts.get("sources") or {}
    compared = result.parts.get("sources_pairwise")
    if not out and not compared:
        return []
    side_by_side = []
    if compared:
        side_by_side = [_p(PAIRWISE_TEXT), table(pd.DataFrame(compared).round(4), "Each noise source against a plain "
                                                 "seed, side by side", folder, "noise_sources_pairwise")]
        for name, frame in (result.parts.get("sources_pairwise_per_prompt") or {}).items():
            side_by_side.append(table(frame.round(4), f"{name}: how often the source's side won, per prompt (a tie "
                                      "half), most first", folder, f"noise_sources_pairwise_{slug(name, 40)}_per_prompt",
                                      ranked_by="won"))
    if not out:  # pairwise answers only
        return ["<h2>Noise sources</h2>", *side_by_side]

    text = ("Some candidates of each batch started from another noise than their seed's draw, chosen at random "
            "positions and not shown as such. Unit: the candidate; rates per arm among the judgements that had both; "
            f"the difference's 95% interval comes from a bootstrap {out['bootstrap']}; p is one-sided, the arm labels "
            "shuffled within each judgement (the campaign's own randomisation). Verifiers: among pairs of one source "
            "and one plain candidate of a judgement that people split, how often the verifier ranks them as people "
            "did (0.5 = chance). A gain over plain seeds at the same guidance is not yet a gain over simply guiding "
            "harder: on the digits sandbox re-denoise gains exactly what a first-step guidance boost gains, which "
            "needs no new noise (benchmarks/noise_loop.py puts every method beside that control).")
    table_rows = pd.DataFrame(out["sources"]).round(4)
    parts = ["<h2>Noise sources</h2>", _p(text)] + [_p(line) for line in (verdict(s) for s in out["sources"])]
    parts += [_p(note) for note in out.get("notes", [])]
    parts.append(table(table_rows, "Each noise source against plain seeds", folder, "noise_sources"))
    parts += side_by_side
    for name, frame in out["per_prompt"].items():
        parts.append(table(frame, f"{name} against plain seeds per prompt, largest difference first", folder,
                           f"noise_sources_{name}_per_prompt", ranked_by="difference"))
    for name, agreements in out["verifiers"].items():
        if agreements:
            frame = pd.DataFrame([{"verifier": v, **a} for v, a in agreements.items()]).round(4)
            parts.append(table(frame, f"Verifiers on {name} vs plain pairs people split", folder,
                               f"noise_sources_{name}_verifiers"))
    return parts


def body(result, folder) -> list[str]:
    parts = []
    for section in (_sources, _rates, _clip, _agreement, _seeds, _noise, _selector, _embedding, _pairwise, _verifiers):
        parts += section(result, folder)
    return parts
