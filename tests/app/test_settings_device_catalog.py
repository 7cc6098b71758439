import pytest
import torch

from shared import catalog
from shared.device import default_budget_bytes, pick_device, pick_dtype
from shared.settings import parse_settings

pytestmark = pytest.mark.fast


def test_defaults_are_secure():
    s = parse_settings([], env={})
    assert s.host == "127.0.0.1" and s.port == 7860 and not s.share and s.auth is None
    assert s.models == "bundled" and not s.allow_any_model


def test_cli_overrides_env():
    s = parse_settings(["--port", "9000"], env={"PLAYGROUND_PORT": "8000", "PLAYGROUND_DEVICE": "cpu"})
    assert s.port == 9000 and s.device == "cpu"


def test_share_refused_without_auth(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--share"], env={})
    assert "--auth" in capsys.readouterr().err
    s = parse_settings(["--share", "--auth", "ann:secret"], env={})
    assert s.share and s.auth == ("ann", "secret")


@pytest.mark.parametrize(
    "argv",
    [["--auth", "nopassword"], ["--device", "tpu"], ["--cache-gb", "nan"], ["--max-queue", "0"], ["--models", "huge"]],
)
def test_bad_flags_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv, env={})
    assert "error" in capsys.readouterr().err


def test_device_policy():
    assert pick_device("auto", cuda=True, mps=True) == "cuda"
    assert pick_device("auto", cuda=False, mps=True) == "mps"
    assert pick_device("auto", cuda=False, mps=False) == "cpu"
    assert pick_device("cpu", cuda=True, mps=False) == "cpu"
    with pytest.raises(ValueError, match="no CUDA"):
        pick_device("cuda", cuda=False, mps=False)


def test_dtype_policy():
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cuda", bf16_supported=True) == torch.bfloat16
    assert pick_dtype("cuda", bf16_supported=False) == torch.float16
    assert pick_dtype("cpu", override="bf16") == torch.bfloat16
    with pytest.raises(ValueError):
        pick_dtype("cpu", override="int3")


def test_budget_defaults():
    assert default_budget_bytes("cpu", total_bytes=100) == 50
    assert default_budget_bytes("cuda", total_bytes=100) == 80


def test_catalog_is_plain_data_and_hub_entries_are_pinned():
    for spec in catalog.CATALOG.values():
        assert spec.task and spec.license and spec.size_mb > 0
        if not spec.bundled:
            assert spec.revision and len(spec.revision) == 40, spec.key
    for preset in ("bundled", "cpu", "gpu"):
        assert catalog.default_model("chat", preset) in catalog.CATALOG
    assert catalog.CATALOG[catalog.default_model("chat", "bundled")].bundled


def test_only_catalog_models_unless_operator_allows(tmp_path):
    with pytest.raises(ValueError, match="Unknown model"):
        catalog.resolve(str(tmp_path), "chat")
    with pytest.raises(ValueError, match="Unknown model"):
        catalog.resolve("evil/remote-code-model", "chat")
    spec = catalog.resolve(str(tmp_path), "chat", allow_any_model=True)
    assert spec.source == str(tmp_path)
    with pytest.raises(ValueError, match="No model"):
        catalog.resolve("  ", "chat")
