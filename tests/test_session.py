"""The whole annotation loop in plain Python: three prompts judged, three complete records."""

import json

import pytest
import torch
from PIL import Image

from goldennoise import answers, noise, session
from goldennoise.records import RecordStore


def test_three_prompts_give_three_verifiable_records(engine, three_prompts, small_settings):
    store = RecordStore(engine.outputs)
    state = session.new_session(three_prompts, annotator="ada")
    assert "Loaded tiny-flux" in session.apply_settings(engine, state, small_settings)
    for index in range(3):
        session.advance(state)
        batch = session.generate(engine, state)
        assert batch.seeds == [100 + 4 * index + k for k in range(4)]
        answers.submit(store, state, batch.seeds[1:3])
    result = store.read()
    assert result.warnings == [] and len(result.records) == 3
    for index, record in enumerate(result.records):
        assert record.annotator == "ada" and record.prompt["index"] == index
        assert record.prompt["text"] == three_prompts.prompts[index].text
        assert record.golden_seeds == record.seeds[1:3]
        assert record.bad_seeds == [record.seeds[0], record.seeds[3]]
        assert record.model["pipeline_class"] == "FluxPipeline" and record.model["revision"].startswith("sha256:")
        runtime = record.parameters.pop("runtime")
        assert record.parameters == {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 128, "width": 128,
                                     "max_sequence_length": 256, "scheduler": None}
        assert runtime["dtype"] == "float32" and runtime["placement"] == "cpu" and runtime["batched_call"]
        assert record.clip_model["id"] == "tiny-clip"
        assert record.timing["generation_seconds"] > 0 and record.timing["shown_at"]
        assert set(record.versions) >= {"torch", "diffusers", "transformers", "goldennoise"}
        for sample in record.samples:
            block = sample["noise"]
            assert block["shape"] == [1, 4, 16, 16]
            plain = torch.randn(block["shape"], generator=torch.Generator("cpu").manual_seed(sample["seed"]))
            assert noise.noise_sha256(plain) == block["sha256"]
            image_path = engine.outputs / sample["image_path"]
            assert image_path.is_file() and image_path.name == f"{sample['seed']}.png"
            text = Image.open(image_path).text
            assert text["prompt"] == record.prompt["text"] and text["seed"] == str(sample["seed"])
            assert json.loads(text["parameters"])["num_inference_steps"] == 4
            assert 0 < sample["clip_score"] < 100


def test_hostile_prompt_cannot_escape_the_images_folder(engine, small_settings):
    from goldennoise.prompts import parse_prompts

    hostile = parse_prompts(b"../../../etc/passwd\n", "h.txt")
    state = session.new_session(hostile)
    session.apply_settings(engine, state, small_settings)
    batch = session.generate(engine, state)
    for path in batch.image_paths:
        resolved = (engine.outputs / path).resolve()
        assert resolved.is_relative_to((engine.outputs / "images").resolve())


def test_submit_refuses_seeds_not_shown(engine, three_prompts, small_settings):
    state = session.new_session(three_prompts)
    session.apply_settings(engine, state, small_settings)
    with pytest.raises(ValueError, match="generate a batch first"):
        answers.submit(RecordStore(engine.outputs), state, [])
    batch = session.generate(engine, state)
    with pytest.raises(ValueError, match=r"Seeds \[5\] are not in the batch"):
        answers.submit(RecordStore(engine.outputs), state, [5])
    record = answers.submit(RecordStore(engine.outputs), state, [])  # none golden is a valid answer
    assert record.golden_seeds == [] and record.bad_seeds == batch.seeds


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("num_inference_steps", 0, "num_inference_steps must be"),
        ("width", 250, "width must be a multiple of 16"),
        ("height", 8192, "height must be a multiple of 16"),
        ("batch_size", 0, "batch_size must lie in 1..64"),
        ("batch_size", 10000, "batch_size must lie in 1..64"),
        ("start_seed", -5, "start_seed must keep seeds"),
        ("seed_strategy", "lucky", "Unknown seed strategy"),
        ("scheduler", "DDIMScheduler", "does not fit tiny-flux"),
        ("guidance_scale", -1.0, "guidance_scale must lie"),
    ],
)
def test_impossible_settings_are_refused_with_the_field_named(engine, three_prompts, small_settings, field, value, message):
    state = session.new_session(three_prompts)
    setattr(small_settings, field, value)
    with pytest.raises(ValueError, match=message):
        session.apply_settings(engine, state, small_settings)
    assert state.settings is None


def test_end_of_prompts(engine, small_settings):
    from goldennoise.prompts import parse_prompts

    state = session.new_session(parse_prompts(b"only one\n", "one.txt"))
    session.apply_settings(engine, state, small_settings)
    assert session.advance(state).text == "only one"
    assert session.advance(state) is None and session.advance(state) is None
    with pytest.raises(ValueError, match="No prompt left"):
        session.generate(engine, state)
