"""The package as a user gets it: a fresh virtualenv outside the repository, the command, a 20-line script.

The install is real (no `--system-site-packages`): `pip install torch==2.13.0 <repo>[analysis]`
in one command, so the CPU torch comes from this machine's wheel folder (about 80 s).
The repository is copied first so the build leaves nothing behind in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path

    import datasets
    from goldennoise.facade import Collector

    work = Path(sys.argv[1])
    gn = Collector(work / "outputs", model="tiny-flux", height=64, width=64, num_inference_steps=2)
    for i, prompt in enumerate(["a red fox in the snow", "a lighthouse at dusk", "a bowl of ramen"]):
        batch = gn.generate(prompt, seeds=[10 * i + 1, 10 * i + 2, 10 * i + 3, 10 * i + 4])
        gn.judge(batch, golden=batch.seeds[:2], annotator="me")
    gn.export(work / "exports")

    ds = datasets.load_dataset(str(work / "exports" / "hub"), split="train", cache_dir=str(work / "cache"))
    assert isinstance(ds.features["golden"], datasets.ClassLabel), ds.features["golden"]
    splits = ds.train_test_split(test_size=0.5, stratify_by_column="golden", seed=0)
    assert sorted(splits["test"]["golden"]) == [0, 0, 0, 1, 1, 1], splits["test"]["golden"]
    import goldennoise
    print("labelled", len(ds), "rows from", goldennoise.__file__)
''')


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "HF_HUB_OFFLINE": "1", "GOLDENNOISE_CACHE": str(tmp / "models"),
            "HF_DATASETS_CACHE": str(tmp / "datasets-cache")}


@pytest.mark.slow
@pytest.mark.release  # ~2.5 min; CI's clean clone runs the same install: bash scripts/test.sh -m release
def test_fresh_virtualenv_command_and_facade_script(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                  "outputs", ".pytest_cache", "test-artifacts"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = _env(tmp_path)
    install = subprocess.run([str(bin_dir / "pip"), "install", "-q", "torch==2.13.0", f"{source}[analysis]"],
                             env=env, capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    outside = tmp_path / "outside"
    outside.mkdir()

    def run(*args):
        done = subprocess.run([str(a) for a in args], cwd=outside, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    top = run(bin_dir / "goldennoise", "--help")
    assert all(word in top for word in ("app", "export", "push", "verify", "GOLDENNOISE_OUTPUTS"))
    app = run(bin_dir / "goldennoise", "app", "--help")
    assert "{auto,float32,bfloat16,float16}" in app and "{random,sequential,pool}" in app
    assert "environment variables:" in app and "HF_TOKEN" in app and "GOLDENNOISE_AUTH" in app
    (outside / "label.py").write_text(SCRIPT, encoding="utf-8")
    out = run(bin_dir / "python", outside / "label.py", outside / "work")
    assert "labelled 12 rows from" in out
    assert str(venv) in out.split("from", 1)[1]  # the installed package, not the checkout


def test_import_and_store_work_without_fcntl(tmp_path):
    """Windows has no `fcntl`: importing goldennoise and appending to the store must not need it."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "fcntl.py").write_text('raise ImportError("No module named \'fcntl\' (simulated Windows)")\n')
    script = textwrap.dedent(f'''
        import sys
        try:
            import fcntl
        except ImportError:
            pass
        else:
            raise SystemExit("fcntl is still importable")
        import goldennoise
        from goldennoise.store import schema
        from goldennoise.ids import new_id, utc_now
        from goldennoise.store.records import RecordStore
        store = RecordStore({str(tmp_path / "outputs")!r})
        store.append(schema.Retraction(record_id=new_id(), created_at=utc_now(), annotator="ann",
                                       prompt={{"text": "a fox", "id": "p1", "index": 0, "source": "test"}},
                                       retracts=new_id()))
        read = store.read()
        assert len(read.records) == 1 and not read.warnings, read
        assert "fcntl" not in sys.modules or sys.modules["fcntl"] is None
        print("ok")
    ''')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
