"""What the collected golden-noise data says: `run(outputs)` writes the reports and returns their summary.

    python -m goldennoise.research.analysis OUTPUTS [--campaign-id ID] [--pool] [--no-selector] [--umap]

Each (campaign, generation configuration) group is analysed on its own: noises of
different models, sizes or dtypes are not comparable, so nothing is pooled unless
asked. Every noise is re-made from its seed and verified first; a record whose
noise does not match is excluded and named. The modules, in the order of a run:

- `data`: the store as tables, noises verified and featurized one at a time;
- `sources`: candidates from a noise source (redenoise) against plain seeds in the
  same judgements; every other analysis then uses the plain candidates only;
- `group`: every analysis of one group, in report order, with `design` (the
  design table, caveats drawn from the data, words for the controls);
- `stats` (rates, CLIP agreement, kappa, noise statistics), `selection` (CLIP
  agreement over all pre-filter candidates), `seeds` (shrunk per-seed rates,
  split-half, the seed-effect permutation test), `pairwise` (Bradley-Terry),
  `embedding` (PCA / t-SNE / k-means / UMAP of the features), `ipw` (noise
  statistics under a pre-filter: a weight per distinct noise, weighted
  correlations, a Wald test with a clustered-bootstrap SE), and the selector's
  evaluation in `research.selector`;
- `inference`: clustered bootstrap, within-stratum AUC, BH/Holm, p-value format;
- `report` / `sections` / `figures`: the HTML report, escaped, every table captioned.

Trade-offs: permutation tests (200 by default) dominate the run time on small
data; re-making and verifying noises dominates on large data (~10 ms per
FLUX-size noise, one at a time). Intervals are percentile bootstraps: simple and
honest about clustering, a little narrow with very few prompts.
"""

from __future__ import annotations

from pathlib import Path

from goldennoise.errors import UserError
from goldennoise.store.configuration import selector_path

__all__ = ["run", "UserError"]


def _step(progress):
    def report(fraction: float, desc: str) -> None:
        if progress is not None:
            progress(fraction, desc=desc)
    return report


def run(outputs: str | Path, campaign: str | None = None, pool: bool = False, with_selector: bool = True,
        umap: bool = False, out: str | Path | None = None, progress=None, store=None) -> dict:
    """Analyse the records under `outputs`, per (campaign, configuration) group unless `pool`.

    Returns {"summary": [plain-text lines], "report": Path (the group's report, or an index of several),
    "figures": [(png path, title)], "selector_table": DataFrame | None, "groups": [keys],
    "selector": Path | None, "results": [GroupResult]}. Raises UserError when there is nothing to analyse.
    """
    from threadpoolctl import threadpool_limits

    from goldennoise.research.analysis import data as data_mod  # lazy: heavy (pandas, scikit-learn, scipy)
    from goldennoise.research.analysis import group, report  # lazy: heavy (matplotlib, scikit-learn)

    outputs = Path(outputs)
    step = _step(progress)
    step(0.0, "Reading records…")
    data = data_mod.load(outputs, campaign, store)
    data_mod.verify_and_featurize(data, progress)
    tables = data_mod.group_tables(data, pool)
    if not tables:
        raise UserError("outputs: every judgement was excluded (its noise did not match its record); nothing to "
                        "analyse. Run `goldennoise verify OUTPUTS` to see why.", "outputs")
    global_notes = list(data.excluded) + data.warnings
    if data.verified.note():
        global_notes.insert(0, data.verified.note())
    if pool:
        global_notes.insert(0, "Pooled: all campaigns and configurations analysed together, which mixes noises "
                               "that are not comparable; noise analyses use the most common noise shape only.")
    results, entries, figures, selector_tables = [], [], [], []
    saved: dict[str, tuple[int, Path]] = {}
    root = outputs / "analysis"
    for k, (key, (rows, pairs)) in enumerate(tables.items()):
        step(0.5 + 0.45 * k / len(tables), f"Analysing {key}…")
        with threadpool_limits(1):  # small matrices; OpenMP threads only spin on a shared machine (t-SNE: 30x)
            result = group.analyse(key, rows, pairs, data.candidates, data.features, with_selector, umap)
        result.caveats += global_notes
        folder = root.joinpath(*[report.safe_name(part) for part in key.split("/")])
        path, pngs = report.write_group(result, outputs, folder)
        figures += pngs
        entries.append((key, path, result.summary))
        results.append(result)
        if result.evaluation is not None:
            selector_tables.append(result.evaluation.table.drop(columns=["p_value"]).assign(group=key))
        if result.selector is not None and result.configuration:
            distinct = rows["seed"].nunique()
            target = selector_path(outputs, report.safe_name(result.configuration))
            if distinct > saved.get(result.configuration, (-1, None))[0]:
                result.selector.save(target)
                saved[result.configuration] = (distinct, target)
    if len(entries) == 1 and out is None:
        main = entries[0][1]
    else:
        main = report.write_index(entries, Path(out) if out else root / "index.html", global_notes)
    if out is not None and len(entries) == 1:
        main = Path(out)
        main.parent.mkdir(parents=True, exist_ok=True)
        main.write_text(entries[0][1].read_text(encoding="utf-8"), encoding="utf-8")
    summary = []
    for key, _, lines in entries:
        summary.append(f"{key}:")
        summary += [f"  {line}" for line in lines]
    summary += global_notes
    saved_selector = next(iter(saved.values()))[1] if len(saved) == 1 else None
    for configuration, (_, path) in saved.items():
        shown = path.relative_to(outputs) if path.is_relative_to(outputs) else path.name
        summary.append(f"seed selector for configuration {configuration} saved in the outputs folder: {shown}")
    step(1.0, "Report written")
    import pandas as pd

    return {"summary": summary, "report": main, "figures": figures,
            "selector_table": pd.concat(selector_tables, ignore_index=True) if selector_tables else None,
            "groups": [key for key, _, _ in entries], "selector": saved_selector, "results": results}
