"""GPU checks for the shared model layer. Run on a CUDA machine with `pytest -m gpu`; CI (CPU-only)
deselects them on purpose through the `gpu` marker."""

import gc
import weakref

import pytest
import torch

from shared.cache import CacheKey, ModelCache
from shared.device import default_budget_bytes, pick_device, pick_dtype
from shared.loaders import load_causal_lm

pytestmark = pytest.mark.gpu


def spec(path):
    from tests.tiny_models import spec as test_spec

    return test_spec(path, device="gpu")


def test_policy_picks_cuda_and_bf16():
    assert pick_device("auto") == "cuda"
    assert pick_dtype("cuda") == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    total = torch.cuda.get_device_properties(0).total_memory
    assert default_budget_bytes("cuda") == int(total * 0.8)


def test_loader_places_model_on_gpu_and_generates(tiny_llama_dir, tmp_path):
    lm = load_causal_lm(spec(tiny_llama_dir), device="cuda", dtype=torch.bfloat16, cache_dir=tmp_path)
    param = next(lm.model.parameters())
    assert param.device.type == "cuda" and param.dtype == torch.bfloat16
    ids = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"].cuda()
    out = lm.model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 8


def test_eviction_and_unload_free_gpu_memory(tiny_llama_dir, tmp_path):
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()

    def big():  # 256 MiB on the GPU
        return torch.nn.Linear(8192, 8192, bias=False, device="cuda")

    cache = ModelCache(budget_bytes=300 * 2**20)
    a = weakref.ref(cache.get(CacheKey("a", "cuda", "float32"), big))
    assert torch.cuda.memory_allocated() - base >= 256 * 2**20
    cache.get(CacheKey("b", "cuda", "float32"), big)  # over budget: a is evicted
    gc.collect()
    assert a() is None
    assert torch.cuda.memory_allocated() - base < 300 * 2**20
    cache.clear()
    assert torch.cuda.memory_allocated() - base < 2**20


def test_hosted_preset_code_paths_on_a_dedicated_gpu(tiny_llama_dir, tiny_sd_dir, tmp_path, test_catalog):
    """The hosted preset's paths on a dedicated GPU (Space or own machine), on tiny models: chat and
    attention models placed on cuda in the policy's dtype, a diffusion pipeline on cuda generating,
    and the bundled models in fp32; ZeroGPU off, the cache's budget from the real device."""
    from demos.attention import ui as attention
    from demos.chat import ui as chat
    from demos.text_to_image import ui as text_to_image
    from shared import runtime
    from tests.helpers import app_settings
    from tests.tiny_models import spec as test_spec

    test_catalog(
        test_spec(tiny_llama_dir, "tiny-chat", device="gpu"), test_spec(tiny_sd_dir, "tiny-sd", "text-to-image")
    )
    rt = runtime.configure(app_settings(cache_dir=tmp_path, models="hosted", public_demo=True))
    assert rt.device == "cuda" and not rt.settings.zero_gpu and rt.cache.budget_bytes < runtime.NO_EVICTION
    lm = runtime.causal_lm("tiny-chat")
    assert next(lm.model.parameters()).device.type == "cuda" and next(lm.model.parameters()).dtype == rt.dtype
    assert list(chat.chat("Hi", max_new_tokens=4, temperature=0.0, model="tiny-chat"))
    assert attention.attention("The cat sat.", model="tiny-chat", layer=0, head=0)["tokens"]
    out = text_to_image.text_to_image("a red circle", model="tiny-sd", num_inference_steps=2, width=64, height=64)
    assert out["images"]
    gan = runtime.latent_model("digits-gan")
    assert runtime.dtype_for(runtime.catalog.CATALOG["digits-gan"]) == torch.float32 and gan is not None
