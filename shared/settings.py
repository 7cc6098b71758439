"""Process-wide settings, read from the command line and environment in one place.

Every flag has an environment variable of the same name (``--cache-gb`` ↔ ``PLAYGROUND_CACHE_GB``);
the command line wins. Settings are configuration of the process, never per-user state.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from shared import zerogpu

ENV_PREFIX = "PLAYGROUND_"
PRESETS = ("bundled", "cpu", "gpu", "hosted")
DEVICES = ("auto", "cpu", "cuda", "mps")
CHAT_ENGINES = ("auto", "transformers", "llama.cpp")  # auto = llama.cpp when its server is built
SERVER_FLAVORS = ("openai", "vllm", "sglang", "tgi", "ollama", "llama.cpp")
OPENAI_KEY_ENV = ENV_PREFIX + "OPENAI_API_KEY"  # the server's key: from the environment only, never a flag
JOBS_PER_VISITOR_HOSTED = 3  # model jobs (queued + running) one visitor may hold when the app is hosted
JOBS_PER_VISITOR_PUBLIC = 2  # …on a public demo
# A public demo's per-request caps, so one visitor cannot hold a GPU for minutes (the app's own are larger)
PUBLIC_CAPS = {
    "max_new_tokens": 384,  # chat: the longest reply
    "image_cost": 4 * 8 * 512 * 512,  # text to image: images × steps × pixels (4 images of 512² at 8 steps)
    "attention_tokens": 256,  # attention: tokens of text
}


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"  # loopback unless the operator says otherwise
    port: int = 7860
    share: bool = False  # a public share link; refused without --auth
    auth: tuple[str, str] | None = None  # ("user", "password")
    device: str = "auto"  # auto picks cuda > mps > cpu
    models: str = "bundled"  # preset: which catalog model each tab starts on
    cache_gb: float | None = None  # model-cache budget; None = device default
    allow_any_model: bool = False  # let the UI/API load hub ids or paths outside the catalog
    max_queue: int = 64  # requests waiting beyond this get a "busy" message
    gpu_concurrency: int | None = None  # heavy events at once; None = device default
    max_file_size: str = "10mb"  # uploads larger than this are refused
    preload: bool = True  # warm the default chat model in the background at start
    stream_interval: float = 0.2  # streamed replies and previews update at most this often (seconds)
    max_image_pixels: int = 4096 * 4096  # uploads larger than this are refused before decoding
    cache_dir: Path = dataclasses.field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "genai-playground"
        )
    )
    operator_controls: bool | None = None  # the System panel's "Unload all models"; None = on only on_this_machine
    max_jobs_per_visitor: int | None = None  # model jobs one visitor may hold; 0 = no limit; None = 3 when hosted
    trust_forwarded_for: bool = False  # the visitor is X-Forwarded-For's last address (only behind your own proxy)
    root_path: str = ""  # the app's path behind a reverse proxy, e.g. /playground (Gradio's root_path)
    chat_engine: str = "auto"  # what runs the bundled chat model by default
    llama_server: Path | None = None  # the llama-server binary; None = the one `make llama-server` built, or PATH
    gguf: tuple[Path, ...] = ()  # more GGUF files for llama.cpp to serve, each a chat model
    llama_context: int = 8192  # llama-server's context window (tokens)
    openai_url: str = ""  # an OpenAI-compatible server's API base, e.g. http://gpu-host:8000/v1
    openai_models: tuple[str, ...] = ()  # the models users may pick on it
    openai_flavor: str = "openai"  # which server it is, for the settings the standard API lacks
    openai_context: int = 0  # its window in tokens, for the context gauge (0 = unknown)
    openai_api_key: str = dataclasses.field(default="", repr=False)  # from PLAYGROUND_OPENAI_API_KEY only
    share_links: bool = True  # the Share buttons and /share; off, no link can be made (made ones still open)
    share_dir: Path | None = None  # where links are kept; None = a Space's /data volume, else the user's data folder
    share_days: float = 0  # a link expires this many days after it was made; 0 = never
    share_snapshot_mb: float = 20  # one link's snapshot, images included
    share_store_mb: float = 500  # all links together, images included; past it sharing says the store is full
    shares_per_hour: int = 60  # links one visitor may make in an hour; 0 = no limit
    zero_gpu: bool = False  # run GPU work the ZeroGPU way (parse_settings: on when SPACES_ZERO_GPU is set)
    public_demo: bool = False  # a public demo's caps and limits (parse_settings: on when on a Space, SPACE_ID)

    @property
    def on_this_machine(self) -> bool:
        """The laptop case: bound to loopback, no share link, no proxy in front, so every visitor is the operator."""
        return is_loopback(self.host) and not self.share and not self.trust_forwarded_for

    @property
    def operator_controls_on(self) -> bool:
        return self.on_this_machine if self.operator_controls is None else self.operator_controls

    @property
    def jobs_per_visitor(self) -> int:
        """The per-visitor limit in force (0 = none): on this machine there is one visitor, so none by default."""
        if self.max_jobs_per_visitor is not None:
            return self.max_jobs_per_visitor
        if self.public_demo:
            return JOBS_PER_VISITOR_PUBLIC
        return 0 if self.on_this_machine else JOBS_PER_VISITOR_HOSTED

    def capped(self, value: int, kind: str) -> int:
        """A per-request cap: ``value``, or the public demo's (PUBLIC_CAPS[kind], if any) when that is lower."""
        return min(value, PUBLIC_CAPS[kind]) if self.public_demo and kind in PUBLIC_CAPS else value


def is_loopback(host: str) -> bool:
    """127.0.0.1, ::1 or localhost: only this machine can connect."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _parse_auth(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASSWORD")
    return user, password


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number ≥ 0")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number > 0")
    return number


def _url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")) or len(value) > 500:
        raise argparse.ArgumentTypeError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(part.strip()).expanduser() for part in value.split(",") if part.strip())


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _switch(parser: argparse.ArgumentParser):
    """``flag(name, help)``: an on/off option; alone it means on, ``--name false`` (or the env var) off."""

    def flag(name: str, help: str) -> None:
        parser.add_argument(name, type=_parse_bool, nargs="?", const=True, help=help)

    return flag


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="GenAI Playground: chat, text-to-image, latent sampling and attention in one app.",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    flag = _switch(parser)
    flag("--share", "public share link (needs --auth)")
    parser.add_argument("--auth", type=_parse_auth, help="USER:PASSWORD required to open the app")
    parser.add_argument("--device", choices=DEVICES, help="where models run (default auto)")
    parser.add_argument("--models", choices=PRESETS, help="model preset (default bundled: no network)")
    parser.add_argument("--cache-gb", type=_positive_float, help="model-cache budget in GiB")
    flag("--allow-any-model", "let users load any hub id or path, not just catalog models")
    parser.add_argument("--max-queue", type=_positive_int, help="queue size before 'busy' (default 64)")
    parser.add_argument("--gpu-concurrency", type=_positive_int, help="heavy jobs at once")
    parser.add_argument("--max-file-size", help="upload cap, e.g. 10mb")
    flag("--preload", "warm the chat model at start")
    parser.add_argument("--cache-dir", type=Path, help="where converted weights are kept")
    parser.add_argument(
        "--stream-interval", type=_non_negative_float, help="seconds between streamed updates (default 0.2)"
    )
    parser.add_argument("--max-image-pixels", type=_positive_int, help="largest upload, in pixels (default 4096²)")
    flag("--operator-controls", "show 'Unload all models' (default: only when bound to loopback without --share)")
    parser.add_argument(
        "--max-jobs-per-visitor",
        type=_non_negative_int,
        help=f"model jobs one visitor may have queued or running; 0 = no limit "
        f"(default {JOBS_PER_VISITOR_HOSTED} when hosted, none on loopback)",
    )
    flag("--trust-forwarded-for", "take the visitor's address from X-Forwarded-For (only behind your own proxy)")
    parser.add_argument("--root-path", help="the app's URL path behind a reverse proxy, e.g. /playground")
    parser.add_argument("--chat-engine", choices=CHAT_ENGINES, help="what runs the bundled chat model (default auto)")
    parser.add_argument("--llama-server", type=Path, help="llama-server binary (default: `make llama-server`'s)")
    parser.add_argument("--gguf", type=_paths, help="comma-separated GGUF files llama.cpp serves as chat models")
    parser.add_argument("--llama-context", type=_positive_int, help="llama-server's window, tokens (default 8192)")
    parser.add_argument("--openai-url", type=_url, help="an OpenAI-compatible server, e.g. http://host:8000/v1")
    parser.add_argument("--openai-models", type=_names, help="comma-separated models users may pick on it")
    parser.add_argument("--openai-flavor", choices=SERVER_FLAVORS, help="which server it is (default openai)")
    parser.add_argument("--openai-context", type=_non_negative_int, help="its window in tokens (0 = unknown)")
    flag("--zero-gpu", "run GPU work as ZeroGPU does, in forked workers (default: when SPACES_ZERO_GPU is set)")
    flag(
        "--public-demo",
        "a public demo's limits: smaller requests, 2 jobs per visitor, no training lab (default: on a Space)",
    )
    flag("--share-links", "Share buttons and the /share API (default on)")
    parser.add_argument(
        "--share-dir", type=Path, help="where share links are kept (default: /data on a Space, else ~/.local/share)"
    )
    parser.add_argument(
        "--share-days", type=_non_negative_float, help="links expire after this many days (default 0: never)"
    )
    parser.add_argument("--share-snapshot-mb", type=_positive_float, help="one share link, in MB (default 20)")
    parser.add_argument("--share-store-mb", type=_positive_float, help="all share links together, in MB (default 500)")
    parser.add_argument(
        "--shares-per-hour",
        type=_non_negative_int,
        help="links one visitor may make per hour (default 60; 0 = no limit)",
    )
    return parser


# What every Gradio container and Space sets; read when neither a flag nor PLAYGROUND_* says otherwise.
GRADIO_ENV = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT", "root_path": "GRADIO_ROOT_PATH"}


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (PLAYGROUND_*) overridden by ``argv``. Exits with a message on bad values."""
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Environment first, as if typed before the real arguments, so the CLI wins.
    env_args: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = env.get(ENV_PREFIX + action.dest.upper())
        if value is not None and value != "":
            env_args += [action.option_strings[0], value]
    for dest, name in GRADIO_ENV.items():  # the ecosystem's variables come first: ours and the flags win
        value = env.get(name)
        if value and env.get(ENV_PREFIX + dest.upper()) in (None, ""):
            env_args = ["--" + dest.replace("_", "-"), value, *env_args]
    namespace = parser.parse_args(env_args + list(argv))
    given = {k: v for k, v in vars(namespace).items() if v is not None}
    given.setdefault("zero_gpu", zerogpu.requested(env))  # what the platform says, unless told otherwise
    given.setdefault("public_demo", bool(env.get("SPACE_ID")))
    if given["zero_gpu"]:
        given.setdefault("models", "hosted")  # a ZeroGPU Space: the preset its README preloads
    settings = Settings(**given, openai_api_key=env.get(OPENAI_KEY_ENV, ""))
    if settings.openai_url and not settings.openai_models:
        parser.error("--openai-url needs --openai-models: the models users may pick on that server")
    if settings.share and settings.auth is None:
        parser.error("--share makes the app public: set --auth USER:PASSWORD (or PLAYGROUND_AUTH) too")
    if settings.allow_any_model and (settings.zero_gpu or settings.public_demo):
        parser.error(
            "--allow-any-model is off on a public demo and on ZeroGPU (models load at startup there): "
            "add the model to shared/catalog.py instead, or start with --public-demo false"
        )
    return settings
