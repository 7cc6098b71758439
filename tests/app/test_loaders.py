import json
import pickle

import pytest
import torch

from shared.loaders import ModelLoadError, load_causal_lm
from tests.tiny_models import spec

pytestmark = pytest.mark.fast


def test_local_directory_loads_through_the_hub_loader(tiny_llama_dir, tmp_path):
    lm = load_causal_lm(spec(str(tiny_llama_dir)), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    assert lm.model.config.num_hidden_layers == 2 and lm.context_window == 256
    assert lm.tokenizer.chat_template and not lm.model.training
    assert next(lm.model.parameters()).dtype == torch.float32


class Boom:
    def __reduce__(self):
        import os

        return (os.mkdir, ("/tmp/playground-pickle-ran",))


def test_pickle_checkpoint_is_refused_before_unpickling(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump(Boom(), f)
    with pytest.raises(ModelLoadError, match="pickle"):
        load_causal_lm(spec(str(tmp_path)), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    import os

    assert not os.path.exists("/tmp/playground-pickle-ran")


def test_broken_model_gives_a_clear_error_without_paths(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError) as info:
        load_causal_lm(spec(str(tmp_path)), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    assert "failed to load" in str(info.value) and str(tmp_path) not in str(info.value)


def test_hub_model_offline_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="offline"):
        load_causal_lm(
            spec("HuggingFaceTB/SmolLM2-360M-Instruct", revision="a" * 40),
            device="cpu",
            dtype=torch.float32,
            cache_dir=tmp_path,
        )


def test_missing_local_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_causal_lm(spec(str(tmp_path / "absent")), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
