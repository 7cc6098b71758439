"""Cold start: `python app.py` until its first page is served, against a bare Gradio app with four
tabs started the same way (same run, rounds alternating which goes first).

    python bench/cold_start.py [--rounds 3]

Each start is a fresh process on a free loopback port, offline, timed from spawn to the first
HTTP 200 on ``/``; the app is asked not to preload a model (``--preload false``: the page waits for
none, and a preload only competes for the CPU). The report is the median of each, and their ratio;
the result is also written to bench/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BARE = """
import sys
import gradio as gr

with gr.Blocks(title="bare") as demo:
    for name in ("Chat", "Text to image", "Latent sampling", "Attention"):
        with gr.Tab(name):
            box = gr.Textbox(label="input")
            out = gr.Textbox(label="output")
            gr.Button("Go").click(lambda text: text, box, out)
demo.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_page(command: list[str], port: int, timeout: float = 180.0) -> float:
    """Seconds from spawning ``command`` to the first 200 on ``/``; the process is stopped after."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[:2]} exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"{command[:2]} served no page within {timeout} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bare_script = Path(tempfile.mkdtemp()) / "bare_app.py"
    bare_script.write_text(BARE)
    times: dict[str, list[float]] = {"app": [], "bare": []}
    for round_ in range(args.rounds):
        order = ["app", "bare"] if round_ % 2 == 0 else ["bare", "app"]
        for which in order:
            port = free_port()
            share_dir = tempfile.mkdtemp(prefix="cold-start-shares-")
            command = (
                [sys.executable, "app.py", "--port", str(port), "--preload", "false", "--share-dir", share_dir]
                if which == "app"
                else [sys.executable, str(bare_script), str(port)]
            )
            times[which].append(first_page(command, port))
            print(f"round {round_ + 1}: {which} {times[which][-1]:.2f} s", flush=True)
    app, bare = statistics.median(times["app"]), statistics.median(times["bare"])
    result = {"app_s": round(app, 2), "bare_s": round(bare, 2), "ratio": round(app / bare, 2), "rounds": times}
    print(f"first page: app {app:.2f} s, bare four-tab Gradio {bare:.2f} s, ratio {app / bare:.2f}")
    out = ROOT / "bench" / "results" / "cold_start.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
