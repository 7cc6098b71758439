"""Tiny *real* models for tests, built offline: a 2-layer Llama with grouped-query attention and a
word-level tokenizer that carries a ChatML chat template. Seeded, so every run builds the same."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MambaConfig,
    MambaForCausalLM,
    PreTrainedTokenizerFast,
)

TINY_T2I_RECIPE = {"steps": 4, "guidance_scale": 3.0, "width": 32, "height": 32, "scheduler": "DDIM", "max_side": 64}


def spec(source, key: str = "tiny", task: str = "chat", **fields):
    """The catalog entry for a test model: the one helper every test uses. ``source`` is a local
    folder (or a hub id, for the offline path); text-to-image entries get a small recipe."""
    from shared.catalog import ModelSpec

    defaults = dict(revision=None, size_mb=1, license="test", device="cpu")
    if task == "text-to-image":
        defaults["recipe"] = TINY_T2I_RECIPE
    return ModelSpec(key=key, task=task, source=str(source), **{**defaults, **fields})


SPECIALS = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
WORDS = (
    "system user assistant hello hi how are you i am fine what is the capital of france paris "
    "a an and to in it this that cat dog sun moon red blue green yes no . , ? !"
).split()
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def build_tiny_llama(path: Path, *, window: int = 256, stops: bool = False, seed: int = 0) -> Path:
    """Save a tiny Llama + tokenizer to ``path`` with ``save_pretrained`` (safetensors).

    ``stops=False`` leaves the end-of-turn token out of the generation config, so replies run to
    ``max_new_tokens`` — what the streaming and Stop tests need.
    """
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=window,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id if stops else None,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_bert(path: Path, seed: int = 0) -> Path:
    """A 2-layer BERT (bidirectional attention) with a WordPiece vocab written here."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_mamba(path: Path, seed: int = 0) -> Path:
    """A 2-layer Mamba: a real language model with no attention at all."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = MambaConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, state_size=4, intermediate_size=32
    )
    MambaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_gpt2(path: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-2: causal, with one fused Q/K/V projection."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=128)
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_distilbert(path: Path, seed: int = 0) -> Path:
    """A 2-layer DistilBERT: bidirectional, its own projection names."""
    build_tiny_bert(path)  # the same WordPiece tokenizer
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len((path / "vocab.txt").read_text().split()),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=128,
    )
    for stale in path.glob("*.safetensors"):
        stale.unlink()
    (path / "config.json").unlink()
    DistilBertModel(config).save_pretrained(path)
    return path


def build_tiny_autoencoder_kl(path: Path, seed: int = 0) -> Path:
    """A 2-block AutoencoderKL (diffusers): images ↔ 4-channel latents at half the resolution."""
    torch.manual_seed(seed)
    tiny_autoencoder_kl().save_pretrained(path)
    return path


def tiny_autoencoder_kl():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
    )


def build_tiny_sd_pipeline(path: Path, seed: int = 0, output: str = "normal") -> Path:
    """A Stable-Diffusion-architecture pipeline from tiny real parts: UNet2DConditionModel,
    AutoencoderKL, CLIPTextModel and a CLIPTokenizer built from a local vocabulary. Saved with
    ``save_pretrained`` (safetensors) so it loads by path like a hub id. ``output="nan"`` or
    ``"black"`` breaks the decoder's last layer so every image comes out NaN or black."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from training.train_text_to_image import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(["a", "red", "blue", "circle", "square", "small", "large", "cat"], max_length=16)
    vocab = len(tokenizer)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=vocab - 1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = tiny_autoencoder_kl()
    if output != "normal":
        with torch.no_grad():
            vae.decoder.conv_out.weight.zero_()
            vae.decoder.conv_out.bias.fill_(float("nan") if output == "nan" else -5.0)
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_kandinsky(path: Path, seed: int = 0) -> tuple[Path, Path]:
    """Kandinsky 2.2 in miniature, as two saved pipelines like the hub's two repos: a prior (CLIP
    text encoder → PriorTransformer → CLIP image embedding) and a decoder (UNet reading that
    image embedding → MoVQ). Returns (decoder_dir, prior_dir)."""
    from diffusers import (
        DDPMScheduler,
        KandinskyV22Pipeline,
        KandinskyV22PriorPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from training.train_text_to_image import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(["a", "red", "blue", "circle", "square", "cat"], max_length=16)
    vocab = len(tokenizer)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=vocab, hidden_size=32, projection_dim=32, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=16, bos_token_id=vocab - 2, eos_token_id=vocab - 1,
            pad_token_id=vocab - 1,
        )
    )  # fmt: skip
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, image_size=32, projection_dim=32, intermediate_size=37, num_attention_heads=4,
            num_channels=3, num_hidden_layers=2, patch_size=8,
        )
    )  # fmt: skip
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=16, embedding_dim=32, num_layers=1, num_embeddings=16
    )
    prior_scheduler = UnCLIPScheduler(
        variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000, clip_sample=True,
        clip_sample_range=10.0,
    )  # fmt: skip
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    prior_dir, decoder_dir = path / "prior", path / "decoder"
    KandinskyV22PriorPipeline(
        prior=prior, image_encoder=image_encoder, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=prior_scheduler, image_processor=image_processor,
    ).save_pretrained(prior_dir, safe_serialization=True)  # fmt: skip
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,  # noise and its variance, as Kandinsky's UNet predicts
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(16, 32),
        layers_per_block=1,
        encoder_hid_dim=32,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        norm_num_groups=8,
    )
    movq = VQModel(
        block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
        in_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
        num_vq_embeddings=12, out_channels=3, up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
        vq_embed_dim=4,
    )  # fmt: skip
    scheduler = DDPMScheduler(
        beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
        steps_offset=1, prediction_type="epsilon", thresholding=False,
    )  # fmt: skip
    KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq).save_pretrained(
        decoder_dir, safe_serialization=True
    )
    return decoder_dir, prior_dir
