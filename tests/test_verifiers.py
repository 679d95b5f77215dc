"""The verifier registry, the offline stand-ins, the weight mappings and the real loaders' offline message.

Outside oracles: `tests/data/verifier_oracles.pt` holds tiny random models written by the
published code itself (open-clip-torch 3.3.0's `CLIP`; image-reward 1.5's BLIP `VisionTransformer`
and `BertModel`, with timm 0.6.13 and transformers 4.46.3; torch 2.14.1 / torchvision 0.29.1),
float16 weights, fixed inputs and the features that code computed from them, and the output
of HPSv2's `ResizeMaxSize` step on a tensor; our mappings must reproduce those features.
PickScore is checked against transformers' own `CLIPModel.forward` logits, CLIP against
`scoring.py` (itself checked against torchmetrics in test_scoring.py).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from goldennoise.errors import ModelLoadError, UserError
from goldennoise.generation import pipeline, scoring, verifiers
from goldennoise.generation.verifiers import aesthetic, base, hpsv2, imagereward, openclip, speed

ORACLES = Path(__file__).parent / "data" / "verifier_oracles.pt"
STAND_INS = ["tiny-clip", "tiny-pickscore", "tiny-hpsv2", "tiny-imagereward", "tiny-aesthetic"]


@pytest.fixture(scope="module")
def images(tiny_model):
    params = pipeline.GenerationParams(4, 0.0, 128, 128, 64)
    return pipeline.generate(tiny_model, "a red cat", [1, 2, 3, 4, 5, 6], params).images  # (6, 3, 128, 128)


@pytest.fixture(scope="module")
def oracles():
    return torch.load(ORACLES, weights_only=True)


def test_registry_lists_the_verifiers_and_refuses_unknown_names():
    assert verifiers.available() == ["aesthetic", "clip", "digits", "hpsv2", "imagereward", "learned", "pickscore"]
    assert verifiers.available(stand_ins=True)[7:] == sorted(STAND_INS)
    with pytest.raises(UserError) as error:
        verifiers.load("hpsv3")
    assert error.value.field == "verifiers"
    assert all(name in str(error.value) for name in verifiers.available(stand_ins=True))
    assert [verifiers.score_column(n) for n in ("clip", "hpsv2")] == ["clip_score", "score_hpsv2"]


@pytest.mark.parametrize("name", STAND_INS)
def test_stand_in_scores_a_batch_like_one_by_one_and_pil_like_tensors(name, images):
    scorer = verifiers.load(name, device="cpu")
    assert scorer.info()["name"] == verifiers.STAND_INS[name] and scorer.info()["id"] == name
    assert set(scorer.info()) == {"name", "id", "revision", "version", "dtype", "score"}
    batch = np.array(scorer.score(images, "a red cat"))
    assert batch.shape == (6,) and np.isfinite(batch).all() and batch.std() > 0
    single = np.array([scorer.score(images[i:i + 1], "a red cat")[0] for i in range(6)])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-4 * (1 + np.abs(batch).max()))
    scorer.batch_size = 4  # chunks of 4 + 2 give the same scores
    np.testing.assert_allclose(scorer.score(images, "a red cat"), batch, rtol=0, atol=1e-5 * (1 + np.abs(batch).max()))
    # PIL path (8-bit images, PIL's resampling where the original used PIL) vs tensor path: measured up to 4% of
    # the batch's spread; allowed 10%.
    pil = np.array(scorer.score(pipeline.to_pil(images), "a red cat"))
    assert np.abs(pil - batch).max() <= 0.1 * batch.std()


def test_clip_verifier_is_todays_clip_score(tiny_clip, images):
    pil = pipeline.to_pil(images)
    assert verifiers.load("tiny-clip").score(pil, "a cat") == pytest.approx(scoring.clip_scores(tiny_clip, pil, "a cat"))


def test_pickscore_is_logit_scale_times_cosine_as_clipmodel_computes_it(images):
    scorer = verifiers.load("tiny-pickscore")
    inputs = scorer.processor(text=["a red cat"], images=pipeline.to_pil(images), return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = scorer.model(**inputs).logits_per_image[:, 0]  # transformers' own forward: scale.exp() * cos
    assert scorer.score(pipeline.to_pil(images), "a red cat") == pytest.approx(logits.tolist(), abs=1e-4)


def test_a_lower_precision_dtype_scores_close_to_float32(images):
    full = np.array(verifiers.load("tiny-hpsv2").score(images, "a cat"))
    half = verifiers.load("tiny-hpsv2", dtype=torch.bfloat16)
    assert half.info()["dtype"] == "bfloat16"
    assert np.abs(np.array(half.score(images, "a cat")) - full).max() < 0.2 * full.std()


def test_seconds_per_batch_measures_a_stand_in():
    assert 0 < speed.seconds_per_batch(verifiers.load("tiny-aesthetic"), n=2, size=64, repeats=1) < 10


# --- The real loaders, offline: one clear message each --------------------------------------------------------


@pytest.mark.parametrize("name, weights", [
    ("clip", "openai/clip-vit-large-patch14"), ("pickscore", "yuvalkirstain/PickScore_v1"),
    ("hpsv2", "xswu/HPSv2 HPS_v2.1_compressed.pt"), ("imagereward", "THUDM/ImageReward ImageReward.pt"),
    ("aesthetic", "camenduru/improved-aesthetic-predictor sac+logos+ava1-l14-linearMSE.pth")])
def test_real_weights_offline_say_which_and_how_to_fix(name, weights, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as error:
        verifiers.load(name, device="cpu")
    message = str(error.value)
    assert f"The {name} verifier" in message and weights in message
    assert f"`hf download {weights.split(' ')[0]}" in message
    assert "HF_HUB_OFFLINE=0" in message and "HF_TOKEN" in message and str(tmp_path) not in message


def test_a_weight_file_with_another_hash_is_refused(monkeypatch, tmp_path):
    import huggingface_hub

    fake = tmp_path / aesthetic.HEAD_FILE
    fake.write_bytes(b"<html>not the weights</html>")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, filename: str(fake))
    with pytest.raises(ModelLoadError, match="sha256"):
        base.hub_file("aesthetic", aesthetic.HEAD_REPO, aesthetic.HEAD_FILE, [], aesthetic.HEAD_SHA256)


# --- Weight mappings: layouts written from the original code, checked on the published sizes (meta tensors) ------


def open_clip_layout(cfg: dict) -> dict[str, tuple]:
    """open_clip `CLIP`'s state dict (model.py `CLIP`, transformer.py `VisionTransformer`/`Transformer`): key -> shape."""
    v, t, e = cfg["vision_cfg"], cfg["text_cfg"], cfg["embed_dim"]
    width, patch, grid = v["width"], v["patch_size"], v["image_size"] // v["patch_size"]
    shapes = {"visual.class_embedding": (width,), "visual.positional_embedding": (grid * grid + 1, width),
              "visual.conv1.weight": (width, 3, patch, patch), "visual.proj": (width, e),
              "token_embedding.weight": (t["vocab_size"], t["width"]),
              "positional_embedding": (t["context_length"], t["width"]), "text_projection": (t["width"], e),
              "logit_scale": ()}
    for norm, w in (("visual.ln_pre", width), ("visual.ln_post", width), ("ln_final", t["width"])):
        shapes.update({f"{norm}.weight": (w,), f"{norm}.bias": (w,)})
    for prefix, w, layers, ratio in (("visual.transformer.resblocks.", width, v["layers"], v.get("mlp_ratio", 4.0)),
                                     ("transformer.resblocks.", t["width"], t["layers"], 4.0)):
        hidden = int(w * ratio)
        for i in range(layers):
            b = f"{prefix}{i}."
            shapes.update({b + "ln_1.weight": (w,), b + "ln_1.bias": (w,), b + "ln_2.weight": (w,),
                           b + "ln_2.bias": (w,), b + "attn.in_proj_weight": (3 * w, w), b + "attn.in_proj_bias": (3 * w,),
                           b + "attn.out_proj.weight": (w, w), b + "attn.out_proj.bias": (w,),
                           b + "mlp.c_fc.weight": (hidden, w), b + "mlp.c_fc.bias": (hidden,),
                           b + "mlp.c_proj.weight": (w, hidden), b + "mlp.c_proj.bias": (w,)})
    return shapes


class _Tokens:
    bos_token_id, eos_token_id, pad_token_id = 49406, 49407, 0


def _meta(shapes: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_hpsv2_mapping_fills_every_vit_h_14_parameter_and_leaves_nothing(oracles):
    real = oracles["open_clip"]["state_dict"]  # written by open_clip itself: the layout function is right
    assert {k: tuple(v.shape) for k, v in real.items()} == open_clip_layout(oracles["open_clip"]["cfg"])
    layout = open_clip_layout(hpsv2.VIT_H_14)
    state, unused = openclip.from_open_clip(_meta(layout))
    assert unused == []
    config, mapped = hpsv2.checked_state({"state_dict": _meta(layout)}, hpsv2.VIT_H_14, _Tokens)  # raises if not
    assert len(mapped) == len(layout) + 2 * 2 * (32 + 24)  # in_proj weight and bias each split into q, k, v
    assert config.vision_config.num_attention_heads == 16 and config.vision_config.intermediate_size == 5120


def test_hpsv2_mapping_refuses_a_missing_or_misshapen_tensor():
    layout = _meta(open_clip_layout(hpsv2.VIT_H_14))
    with pytest.raises(ModelLoadError, match="missing: .*layer_norm1"):
        hpsv2.checked_state({k: v for k, v in layout.items() if k != "transformer.resblocks.3.ln_1.weight"},
                            hpsv2.VIT_H_14, _Tokens)
    layout["visual.proj"] = torch.empty(1024, 1280, device="meta")  # transposed
    with pytest.raises(ModelLoadError, match="wrong shape: visual_projection.weight"):
        hpsv2.checked_state(layout, hpsv2.VIT_H_14, _Tokens)


def test_hpsv2_features_and_resize_equal_open_clips(oracles):
    o = oracles["open_clip"]
    tokens = type("T", (), {"bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 0})
    config, state = hpsv2.checked_state({"state_dict": o["state_dict"]}, o["cfg"], tokens)
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(None, config=config, state_dict=state, dtype=torch.float32).eval()

    def tokenizer(texts, **kwargs):
        return {"input_ids": o["ids"][:1]}

    scorer = hpsv2.HPSv2(model, tokenizer, "oracle", None, "cpu", torch.float32)
    with torch.no_grad():
        scores = scorer.forward(o["pixels"], "ignored")
    torch.testing.assert_close(scores, o["image"] @ o["text"][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(hpsv2.fit_and_pad(o["resize_in"][None], 32)[0], o["resize_out"], atol=1e-6, rtol=0)
    back = openclip.to_open_clip(model.state_dict())
    assert set(back) == set(o["state_dict"])


def blip_layout(vision: dict, med: dict) -> dict[str, tuple]:
    """ImageReward.pt's keys: BLIP's vit.py `VisionTransformer`, med.py `BertModel` (no pooler), the MLP, ITC heads."""
    w, p, n = vision["hidden_size"], vision["patch_size"], (vision["image_size"] // vision["patch_size"]) ** 2
    mlp = vision["intermediate_size"]
    shapes = {"blip.visual_encoder.cls_token": (1, 1, w), "blip.visual_encoder.pos_embed": (1, n + 1, w),
              "blip.visual_encoder.patch_embed.proj.weight": (w, 3, p, p),
              "blip.visual_encoder.patch_embed.proj.bias": (w,), "blip.visual_encoder.norm.weight": (w,),
              "blip.visual_encoder.norm.bias": (w,), "blip.vision_proj.weight": (256, w), "blip.vision_proj.bias": (256,)}
    for i in range(vision["num_hidden_layers"]):
        b = f"blip.visual_encoder.blocks.{i}."
        shapes.update({b + "norm1.weight": (w,), b + "norm1.bias": (w,), b + "attn.qkv.weight": (3 * w, w),
                       b + "attn.qkv.bias": (3 * w,), b + "attn.proj.weight": (w, w), b + "attn.proj.bias": (w,),
                       b + "norm2.weight": (w,), b + "norm2.bias": (w,), b + "mlp.fc1.weight": (mlp, w),
                       b + "mlp.fc1.bias": (mlp,), b + "mlp.fc2.weight": (w, mlp), b + "mlp.fc2.bias": (w,)})
    h, inter, t = med["hidden_size"], med["intermediate_size"], "blip.text_encoder."
    shapes.update({t + "embeddings.word_embeddings.weight": (med["vocab_size"], h),
                   t + "embeddings.position_embeddings.weight": (med["max_position_embeddings"], h),
                   t + "embeddings.LayerNorm.weight": (h,), t + "embeddings.LayerNorm.bias": (h,),
                   "blip.text_proj.weight": (256, h), "blip.text_proj.bias": (256,)})
    for i in range(med["num_hidden_layers"]):
        b = f"{t}encoder.layer.{i}."
        for attention, kv in (("attention", h), ("crossattention", w)):
            for name, size in (("query", h), ("key", kv), ("value", kv)):
                shapes.update({f"{b}{attention}.self.{name}.weight": (h, size), f"{b}{attention}.self.{name}.bias": (h,)})
            shapes.update({f"{b}{attention}.output.dense.weight": (h, h), f"{b}{attention}.output.dense.bias": (h,),
                           f"{b}{attention}.output.LayerNorm.weight": (h,), f"{b}{attention}.output.LayerNorm.bias": (h,)})
        shapes.update({b + "intermediate.dense.weight": (inter, h), b + "intermediate.dense.bias": (inter,),
                       b + "output.dense.weight": (h, inter), b + "output.dense.bias": (h,),
                       b + "output.LayerNorm.weight": (h,), b + "output.LayerNorm.bias": (h,)})
    for i, (out, inp) in zip((0, 2, 4, 6, 7), ((1024, h), (128, 1024), (64, 128), (16, 64), (1, 16))):
        shapes.update({f"mlp.layers.{i}.weight": (out, inp), f"mlp.layers.{i}.bias": (out,)})
    return shapes


PUBLISHED_MED = {"hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
                 "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "vocab_size": 30524,
                 "encoder_width": 768, "add_cross_attention": True, "hidden_act": "gelu"}


def test_imagereward_mapping_fills_every_blip_large_parameter_and_leaves_only_the_itc_heads(oracles):
    o = oracles["image_reward"]  # written by BLIP's own modules: the layout function is right
    written = {k: tuple(v.shape) for k, v in o["state"].items() if "_proj." not in k and "position_ids" not in k}
    assert written == {k: s for k, s in blip_layout(o["vision"], o["med"]).items()
                       if "_proj." not in k and not k.startswith("mlp.")}
    state = _meta(blip_layout(imagereward.BLIP_VIT_LARGE, PUBLISHED_MED))
    state["blip.text_encoder.embeddings.position_ids"] = torch.empty(1, 512, device="meta")  # a BERT buffer
    vision, text, head, unused = imagereward.from_image_reward(state)
    assert unused == [] and len(vision) + len(text) + len(head) == len(state) - 5
    imagereward.checked_states(state, imagereward.BLIP_VIT_LARGE, PUBLISHED_MED)  # raises if anything is off
    del state["blip.visual_encoder.blocks.23.attn.proj.bias"]
    with pytest.raises(ModelLoadError, match="missing: vision.encoder.layers.23.self_attn.projection.bias"):
        imagereward.checked_states(state, imagereward.BLIP_VIT_LARGE, PUBLISHED_MED)


def test_imagereward_reward_equals_blips_own_features(oracles):
    o = oracles["image_reward"]
    vision, text, head = imagereward.build({**o["state"], **{f"mlp.layers.{k}": v for k, v in
                                                             base.mlp_head(32).state_dict().items()}},
                                           o["vision"], o["med"])

    def tokenizer(prompt, **kwargs):
        return {"input_ids": o["ids"], "attention_mask": o["mask"]}

    scorer = imagereward.ImageReward(vision, text, head, tokenizer, "oracle", None, "cpu", torch.float32)
    cls = []
    hook = text.register_forward_hook(lambda module, args, out: cls.append(out.last_hidden_state[:, 0]))
    with torch.no_grad():
        rewards = scorer.forward(o["pixels"], "ignored")
        expected = (head(o["cls"]).squeeze(1) - imagereward.MEAN) / imagereward.STD
    hook.remove()
    # Tight: a LayerNorm eps of 1e-5 instead of BLIP's 1e-6 moves these features by 2e-5.
    torch.testing.assert_close(cls[0], o["cls"], atol=1e-6, rtol=0)
    torch.testing.assert_close(rewards, expected, atol=1e-5, rtol=0)


def test_aesthetic_mapping_takes_the_published_mlp_keys():
    shapes = {f"layers.{i}.{kind}": (out, inp) if kind == "weight" else (out,)
              for i, (out, inp) in zip((0, 2, 4, 6, 7), ((1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)))
              for kind in ("weight", "bias")}
    state, unused = aesthetic.from_predictor(_meta(shapes))
    base.check_mapping("aesthetic", state, {k: v.shape for k, v in base.mlp_head(768).state_dict().items()}, unused)
    assert unused == []


# --- The agreement analysis -------------------------------------------------------------------------------------

from goldennoise.research.analysis import figures  # noqa: E402
from goldennoise.research.analysis import stats  # noqa: E402
from goldennoise.research.analysis import verifiers as agreement  # noqa: E402
from goldennoise.research.analysis.inference import ClusterBootstrap  # noqa: E402


def _samples(prompts: int = 30, per: int = 6, seed: int = 0) -> "pd.DataFrame":
    """One judgement per prompt; ~40% golden; pickscore = the label + tiny noise, hpsv2 and clip random."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = prompts * per
    rows = pd.DataFrame({"prompt_id": np.repeat([f"p{i}" for i in range(prompts)], per),
                         "record_id": np.repeat([f"r{i}" for i in range(prompts)], per),
                         "seed": np.arange(n), "golden": rng.random(n) < 0.4, "weight": 1.0, "annotator": "ann"})
    rows["score_pickscore"] = rows["golden"] + rng.normal(0, 0.01, n)
    rows["score_hpsv2"] = rng.normal(size=n)
    rows["clip_score"] = rng.normal(size=n)
    return rows


def _boot(rows, draws=200):
    return ClusterBootstrap(rows["prompt_id"], None, draws, 0)


def test_a_planted_verifier_is_named_best_and_a_random_one_is_at_chance():
    rows = _samples()
    result = agreement.analyse(rows, boot=_boot(rows), permutations=200)
    table = result["table"].set_index("verifier")
    assert result["best"] == "pickscore" and result["verdict"].startswith("pickscore agrees best")
    assert table.loc["pickscore", "auc"] == 1.0 and table.loc["pickscore", "top1"] == 1.0
    assert table.loc["pickscore", "p_holm"] < 0.05 and table.loc["pickscore", "diff_ci_low"] > 0
    for name in ("hpsv2", "clip"):
        assert table.loc[name, "ci_low"] < 0.5 < table.loc[name, "ci_high"]
        assert table.loc[name, "p_holm"] >= 0.05 and name not in result["verdict"].split(":")[0]
    only_random = agreement.analyse(rows.drop(columns="score_pickscore"), boot=_boot(rows), permutations=200)
    assert only_random["best"] is None and only_random["verdict"].startswith("No verifier beats chance")


def test_the_analysis_is_unchanged_by_an_increasing_transform_of_a_score():
    import pandas as pd

    rows = _samples(seed=1)
    rows["score_hpsv2"] += 0.8 * rows["golden"]  # a weak real signal
    pairs = pd.DataFrame({"prompt_id": [f"p{i % 10}" for i in range(40)],
                          "winner": np.random.default_rng(2).choice(["left", "right", "tie", "both_bad"], 40),
                          "left_score_hpsv2": np.random.default_rng(3).normal(size=40),
                          "right_score_hpsv2": np.random.default_rng(4).normal(size=40)})
    before = agreement.analyse(rows, pairs, boot=_boot(rows), permutations=100)
    for frame, columns in ((rows, ["score_hpsv2"]), (pairs, ["left_score_hpsv2", "right_score_hpsv2"])):
        for c in columns:
            frame[c] = np.exp(3 * frame[c]) + 7  # increasing, far from linear
    after = agreement.analyse(rows, pairs, boot=_boot(rows), permutations=100)
    pd.testing.assert_frame_equal(before["table"], after["table"])
    pd.testing.assert_frame_equal(before["correlation"], after["correlation"])


def test_random_scores_are_called_significant_about_five_percent_of_the_time():
    """The null's calibration: 40 data sets of pure noise, each tested at 0.05 (permutation p is exact)."""
    hits = {"auc": 0, "top1": 0}
    for seed in range(40):
        rows = _samples(prompts=15, per=6, seed=100 + seed)[["prompt_id", "record_id", "seed", "golden", "weight",
                                                            "score_hpsv2"]]
        auc = agreement.auc_agreement(rows, "score_hpsv2", None, permutations=100, seed=seed)
        top1 = agreement.top1_agreement(rows, "score_hpsv2", None, permutations=100, seed=seed)
        hits["auc"] += auc["p_value"] < 0.05
        hits["top1"] += top1["top1_p_value"] < 0.05
    assert hits["auc"] <= 6 and hits["top1"] <= 6  # expected 2 of 40; P(7 or more) < 2% under a calibrated test


def test_weighted_auc_is_stats_clip_agreement_under_a_prefilter():
    rows = _samples(seed=5)
    rows["weight"] = np.where(np.arange(len(rows)) % 6 == 5, 4.0, 1.0)  # one exploration slot, propensity 1/4
    rows["clip_score"] = rows["clip_score"] + rows["golden"]
    ours = agreement.auc_agreement(rows, "clip_score", None, permutations=10)
    assert ours["auc"] == pytest.approx(stats.clip_agreement(rows)["auc"])
    assert ours["auc"] != pytest.approx(stats.clip_agreement(rows)["naive_auc"])


def test_pairwise_agreement_counts_the_human_winner_and_carries_the_verdict_without_golden_labels():
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 120
    winner = rng.choice(["left", "right"], n)
    margin = np.where(rng.random(n) < 0.9, 1.0, -1.0) * np.where(winner == "left", 1, -1)  # right 90% of the time
    pairs = pd.DataFrame({"prompt_id": [f"p{i % 20}" for i in range(n)], "winner": winner,
                          "left_score_pickscore": margin, "right_score_pickscore": 0.0,
                          "left_clip_score": rng.normal(size=n), "right_clip_score": rng.normal(size=n)})
    pairs.loc[0, "winner"] = "both_bad"  # not a decided pair
    result = agreement.analyse(pd.DataFrame(columns=["prompt_id", "record_id", "seed", "golden", "weight"]), pairs,
                               permutations=200)
    table = result["table"].set_index("verifier")
    assert table.loc["pickscore", "pairs"] == n - 1 and table.loc["pickscore", "measure"] == "pairs"
    assert table.loc["pickscore", "pair_agreement"] == pytest.approx(0.9, abs=0.06)
    assert result["best"] == "pickscore" and "pairwise answers" in result["verdict"]
    assert table.loc["clip", "pair_ci_low"] < 0.5 < table.loc["clip", "pair_ci_high"]


def test_within_prompt_spearman_is_scipys_on_one_prompt_and_ignores_prompt_levels():
    from scipy.stats import spearmanr

    rows = _samples(prompts=1, per=40, seed=9)
    matrix = agreement.correlations(rows, ["clip", "hpsv2", "pickscore"])
    assert matrix.loc["clip", "hpsv2"] == pytest.approx(spearmanr(rows["clip_score"], rows["score_hpsv2"])[0])
    many = _samples(prompts=20, per=8, seed=10)
    shifted = many.assign(score_hpsv2=many["score_hpsv2"] + 100 * many["prompt_id"].str[1:].astype(int))
    assert agreement.correlations(shifted, ["clip", "hpsv2"]).loc["clip", "hpsv2"] == pytest.approx(
        agreement.correlations(many, ["clip", "hpsv2"]).loc["clip", "hpsv2"])  # prompt levels do not count


def test_tied_best_seeds_share_the_top_pick():
    import pandas as pd

    rows = pd.DataFrame({"prompt_id": "p", "record_id": "r", "seed": [1, 2, 3, 4], "weight": 1.0,
                         "golden": [True, False, False, False], "score_hpsv2": [2.0, 2.0, 1.0, 0.0]})
    top = agreement.top1_agreement(rows, "score_hpsv2", None, permutations=10)
    assert top["top1"] == 0.5 and top["chance"] == 0.25 and top["difference"] == 0.25


def test_the_figure_is_a_png_of_every_verifier():
    rows = _samples()
    png = figures.verifiers(agreement.analyse(rows, boot=_boot(rows, 50), permutations=50)["table"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_aesthetic_takes_the_vision_tower_and_projection_of_a_whole_clipmodel(images):
    from transformers import CLIPModel

    scorer = verifiers.load("tiny-aesthetic")
    whole = CLIPModel.from_pretrained(verifiers.stand_in_path("tiny-aesthetic")).eval()
    pixels = scorer.pixels(images)
    with torch.no_grad():
        expected = whole.get_image_features(pixel_values=pixels).pooler_output
        expected = scorer.head(expected / expected.norm(dim=-1, keepdim=True)).squeeze(1)
    torch.testing.assert_close(scorer.forward(pixels, "unused"), expected, atol=1e-6, rtol=0)
