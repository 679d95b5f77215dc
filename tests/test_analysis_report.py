"""The report and the entry point: groups kept apart, user text escaped, every table captioned, clear refusals.

One outputs folder holds two configurations (64x64 and 128x128) judged by the app's
own loop, with pairwise answers on the first; one prompt's text is then rewritten
into an HTML injection, as a hostile prompt file would make it.
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from goldennoise.annotation.service import Caller
from goldennoise.errors import UserError
from goldennoise.generation import latents
from goldennoise.research import analysis
from goldennoise.research.analysis.__main__ import main
from tests import factory, planted
from tests.planted import one_thread

HOSTILE = "<img src=x onerror=alert(1)>"
ANNOTATORS = ("ann", "<b>bob</b>")




def _pairwise(service, annotator: str) -> int:
    """Answer every pair the app offers: the seed whose channel 0 is brighter wins; some ties and both-bad."""
    caller, rng, answered = Caller(f"pairs-{annotator}"), np.random.default_rng(1), 0
    service.join(caller, annotator)
    screen = service.show(caller, "pairwise")
    while screen.state == "batch":
        shape = screen.batch.noise[0]["shape"]
        left, right = (float(latents.initial_noise(s, tuple(shape))[0, 0].mean()) for s in screen.batch.seeds)
        winner = rng.choice(["tie", "both_bad"]) if rng.random() < 0.2 else "left" if left > right else "right"
        screen = service.answer(caller, "pairwise", screen.batch.batch_id, winner=str(winner)).screen
        answered += 1
    return answered


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    with one_thread():
        service = planted.make_dataset(tmp / "made", tmp, prompts=12, strategy="random", annotators=ANNOTATORS,
                                       overlap=0.5)
        assert _pairwise(service, "ann") >= 6
        planted.make_dataset(tmp / "made", tmp, prompts=12, strategy="random", size=128, service=service,
                             annotators=("ann",))
        service.close_all()

    def hostile(records):
        for record in records:
            if record.get("prompt", {}).get("text") == "a planted prompt number 3":
                record["prompt"]["text"] = HOSTILE
        return records

    return factory.rewrite(tmp / "made", tmp / "outputs", hostile)


@pytest.fixture(scope="module")
def result(outputs):
    return analysis.run(outputs)


def test_each_configuration_is_its_own_group_with_an_index(outputs, result):
    assert len(result["groups"]) == 2
    assert result["report"] == outputs / "analysis" / "index.html"
    index = result["report"].read_text()
    for key in result["groups"]:
        campaign, configuration = key.split("/")
        report = outputs / "analysis" / campaign / configuration / "report.html"
        assert report.is_file() and f"{campaign}/{configuration}/report.html" in index
    labels = {line for line in result["summary"] if line.endswith(":")}
    assert len(labels) == 2
    for png, title in result["figures"]:
        assert png.endswith(".png") and title


def test_user_text_is_escaped_everywhere(outputs, result):
    pages = [result["report"], *outputs.glob("analysis/*/*/report.html")]
    seen_prompt = False
    for page in pages:
        html = page.read_text()
        assert HOSTILE not in html and "<b>bob</b>" not in html
        seen_prompt |= "&lt;img src=x onerror=alert(1)&gt;" in html
    assert seen_prompt
    for line in result["summary"]:  # plain text: no markup of ours, no entities
        assert not re.search(r"</?(p|li|ul|h\d|br|table|a)\b|&lt;|&amp;", line)


def test_report_opens_with_the_design_and_every_table_says_what_it_shows(outputs, result):
    html = next(p.read_text() for p in outputs.glob("analysis/*/*/report.html") if "Bradley-Terry" in p.read_text())
    assert html.index("<h2>Design</h2>") < html.index("<h2>Caveats</h2>") < html.index("<h2>Summary</h2>")
    for label in ("Configuration", "Seed strategy", "Distinct noises (seeds)", "Prompts", "Annotators", "Pre-filter"):
        assert f"<th>{label}</th>" in html
    assert re.search(r"Golden rate per prompt, highest first \(.*\): all 12 rows\.", html)  # every prompt, no cut
    assert html.count("<table") == html.count("class='caption'") + 1  # every table but the design is captioned


def test_umap_without_the_extra_is_said_plainly(outputs, result, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    campaign = result["groups"][0].split("/")[0]
    html = analysis.run(outputs, campaign=campaign, with_selector=False, umap=True)["report"].read_text()
    assert "UMAP skipped: umap-learn is not installed (pip install umap-learn)." in html


def test_pairwise_answers_are_analysed(outputs, result):
    html = next(p.read_text() for p in outputs.glob("analysis/*/*/report.html") if "Bradley-Terry" in p.read_text())
    assert "Pairwise comparisons" in html and "both bad" in html and "Position check" in html
    assert any("pairwise:" in line for line in result["summary"])


def test_agreement_uses_the_overlap_and_names_the_annotators_escaped(outputs, result):
    html = next(p.read_text() for p in outputs.glob("analysis/*/*/report.html") if "&lt;b&gt;bob" in p.read_text())
    assert "Annotator pairs: all 1 rows" in html


def test_one_campaign_or_pooled_on_request(outputs, result):
    campaign = result["groups"][0].split("/")[0]
    one = analysis.run(outputs, campaign=campaign, with_selector=False)
    assert one["groups"] == [result["groups"][0]] and one["selector"] is None and one["selector_table"] is None
    pooled = analysis.run(outputs, pool=True, with_selector=False)
    assert pooled["groups"] == ["pooled"]
    assert "Pooled" in pooled["report"].read_text() and "most common noise shape" in pooled["report"].read_text()


def test_nothing_to_analyse_is_a_clear_user_error(tmp_path, outputs):
    with pytest.raises(UserError, match="nothing to analyse"):
        analysis.run(tmp_path)
    with pytest.raises(UserError, match="campaigns with records"):
        analysis.run(outputs, campaign="no-such-campaign")


def test_cli_has_help_and_writes_the_report(outputs, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "--campaign-id" in capsys.readouterr().out
    assert main([str(outputs), "--no-selector", "--out", str(tmp_path / "main.html")]) == 0
    assert (tmp_path / "main.html").is_file() and "report:" in capsys.readouterr().out
    assert main([str(tmp_path / "empty")]) == 2
