"""What an anonymous client can run, tried the way a hostile one would: raw HTTP to every route for every
event in ``/config`` (loopback only; every request bounded by a timeout, every loop by the event list).

- ``/run/<name>`` (and ``/api/<name>``) refuse every event: they would run it beside the queue;
- ``/call/<name>`` reaches the documented endpoints and nothing else;
- ``/queue/join`` (by index, as the page itself calls) reaches the documented endpoints and the page's
  own events, each classified below; an event nobody classified fails the test;
- the operator's "Unload all models" exists only where operator controls are on;
- a join with too few values, or a number no float can hold, is refused with a message naming it;
- one visitor can hold only so many model jobs, and gets them back when the jobs end.
"""

from __future__ import annotations

import contextlib
import json
import re
import string
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio import utils as gradio_utils
from gradio_client import Client
from gradio_client.exceptions import ValidationError
from gradio_client.utils import Status
from starlette.requests import Request

import app as app_module
from demos import glue, server
from shared import runtime
from shared.settings import JOBS_PER_VISITOR_HOSTED
from tests.helpers import GOOD, app_settings, free_port

pytestmark = pytest.mark.fast

SHARE_API = {"share", "shared", "unshare"}  # share links: no model work, their own small concurrency group
DOCUMENTED = {"chat", "attention", "text_to_image", "sample_latents", "interpolate", "traverse"} | SHARE_API
DEFAULTS_FILLED = {"attention"}  # every parameter after the first has a plain default, filled in for a raw client

# The page's own events, by handler name and how many of each. The page calls them by index through
# /queue/join, so they cannot be unreachable; what they may do is classified here. A new event fails
# test_every_event_is_classified until it is added to its class.
HEAVY_UI = Counter(  # model work: in a model group ("gpu", or "interactive" for chat and attention), counted per visitor
    respond=5, show_step=1, scrub_step=1, branch_ui=1, generate_ui=1, sample_grid=1, side_by_side=1, interpolation=1,
    image_interpolation=1, usage=1, usage_once=1, traversal=1, live_start=1, live_edit=10, vae_anatomy=1,
    photos=1, show_map=1, decode_map_point=1, run=5, render=7, show_batch=1, find_image=1,  # run: 4 attention + the unCLIP panel
)  # fmt: skip
VIEWS = Counter(  # cheap view updates and the page's own session controls: no model work
    {"add_user_message": 2, "last_user_turn": 2, "edit": 1, "undo": 2, "stop_generation": 3, "export": 1,
     "reply_done": 10, "clear": 1, "mode_note": 1, "fit_slider": 2,
     "model_defaults": 1, "restore": 1, "pick_from_grid": 1, "conversation_as_seen": 1,
     "rollout_view": 1, "model_picked": 1, "model_switched": 1, "offer_lab_models": 1, "sample_download": 1,
     "lock_controls": 1, "unlock_controls": 2, "fit_setting": 1, "fit_seed": 1,
     "stop_session_runs": 1, "status_markdown": 3,
     "make": 4, "delete": 4, "load": 1, "delete_opened": 4,  # share links: make, delete, open one
     "open_in_tab": 4,  # a link's "Open in the tab", one per tab (demos/<tab>/share.py)
     "<lambda>": 8}  # scheduler note, dice, restore's file reset, open the Attention tab, 4 share panels' Close
)  # fmt: skip
LAB = Counter(lab_start=1, lab_pause=1, lab_step=1, lab_stop=1, lab_view=1)  # the training lab's controls
OPERATOR = Counter(unload_models=1)  # only where operator controls are on (by default: loopback, no share)

ELSEWHERE = "203.0.113.7"  # a visitor's address (TEST-NET-3); uvicorn takes X-Forwarded-For from loopback peers
BIG = 10**400  # a JSON integer no float can hold


# --- raw HTTP, bounded ------------------------------------------------------------------------


def post(url: str, path: str, body: dict | str, headers: dict | None = None) -> httpx.Response:
    """One POST on a fresh connection (a server error must not poison the next request), 30 s at most."""
    content = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json", **(headers or {})}
    with httpx.Client(base_url=url, timeout=30) as http:
        return http.post(path, content=content, headers=headers)


def join(url: str, fn_index: int, data: list, session: str | None = None, headers: dict | None = None):
    body = {"data": data, "fn_index": fn_index, "session_hash": session or uuid.uuid4().hex}
    return post(url, "/gradio_api/queue/join", body, headers), body["session_hash"]


def cancel(url: str, fn_index: int, session: str, event_id: str) -> None:
    body = {"fn_index": fn_index, "session_hash": session, "event_id": event_id}
    assert post(url, "/gradio_api/cancel", body).status_code == 200


def completion(url: str, session: str, event_id: str, seconds: float = 60) -> dict:
    """The queue's ``process_completed`` message for one event, read from the session's stream."""
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=seconds) as http:
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                assert time.monotonic() < deadline, "no completion in time"
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                        return message
    raise AssertionError(f"the stream ended before event {event_id} completed")


def call(url: str, name: str, body: str | dict) -> str:
    """``POST /call/<name>``, then its event stream's last event: ``"complete\n<data>"`` or ``"error\n<data>"``."""
    started = post(url, f"/gradio_api/call/{name}", body)
    assert started.status_code == 200, started.text
    with httpx.Client(base_url=url, timeout=60) as http:
        text = http.get(f"/gradio_api/call/{name}/{started.json()['event_id']}").text
    last = text.strip().rsplit("event: ", 1)[-1]
    kind, _, data = last.partition("\ndata: ")
    return f"{kind}\n{data}"


def gradio_names(fns) -> dict[int, str]:
    """The name Gradio gives each handler (its function's name, made unique in order): what
    ``/call/<name>`` used to reach, and what anyone reading the source can guess."""
    names: dict[int, str] = {}
    for index, fn in sorted(fns.items()):
        base = "".join(c for c in str(fn.name) if c not in set(string.punctuation) - {"-", "_"})
        names[index] = gradio_utils.append_unique_suffix(base, list(names.values()))
    return names


def page_defaults(config: dict, dep: dict) -> list:
    """The values the page sends first for an event: each input component's initial value."""
    components = {c["id"]: c for c in config["components"]}
    return [components[i].get("props", {}).get("value") for i in dep["inputs"]]


@pytest.fixture(scope="module")
def config(app_url) -> dict:
    with httpx.Client(base_url=app_url, timeout=30) as http:
        return http.get("/config").json()


def fn_of(demo, name: str) -> int:
    return next(i for i, fn in sorted(demo.fns.items()) if fn.name == name or fn.api_name == name)


def fn_of_url(url: str, api_name: str) -> int:
    with httpx.Client(base_url=url, timeout=30) as http:
        return next(d["id"] for d in http.get("/config").json()["dependencies"] if d["api_name"] == api_name)


@contextlib.contextmanager
def model_slot_held(url: str, address: str = "198.51.100.99"):
    """/chat jobs whose generate waits until the block ends, one per model slot (the device's
    concurrency): model jobs joined meanwhile wait in the queue. The holders then fail, as jobs may."""
    lm = runtime.causal_lm("tiny-chat")
    release = threading.Event()

    def waiting_generate(**kwargs):
        release.wait(120)
        raise RuntimeError("released")

    lm.model.generate = waiting_generate
    client = visitor_client(url, address)
    holders = [client.submit(**GOOD, api_name="/chat") for _ in range(runtime.get().concurrency)]
    try:
        deadline = time.monotonic() + 60
        while any(job.status().code not in (Status.PROCESSING, Status.ITERATING) for job in holders):
            assert time.monotonic() < deadline, [job.status() for job in holders]
            time.sleep(0.02)
        yield holders
    finally:
        release.set()
        del lm.model.generate  # back to the class's own generate
        for job in holders:
            with pytest.raises(Exception, match="RuntimeError"):
                job.result(timeout=60)


def visitor_client(url: str, address: str) -> Client:
    """gradio_client as a visitor from ``address`` (uvicorn takes X-Forwarded-For from a loopback peer)."""
    return Client(url, verbose=False, headers={"X-Forwarded-For": address})


# --- which events exist ---------------------------------------------------------------------


def page_events(demo) -> Counter:
    return Counter(fn.name for fn in demo.fns.values() if fn.api_name not in DOCUMENTED)


def test_every_event_is_classified(launched_app):
    """Every event in /config is a documented endpoint or a classified page event; model work is in
    the gpu group, and only model work is."""
    expected = HEAVY_UI + VIEWS + LAB + OPERATOR
    found = page_events(launched_app)
    assert found == expected, f"unclassified: {dict(found - expected)}; gone: {dict(expected - found)}"
    heavy = Counter(fn.name for fn in launched_app.fns.values() if fn.concurrency_id in glue.MODEL_GROUPS)
    assert heavy == HEAVY_UI + Counter(DOCUMENTED - SHARE_API)
    interactive = Counter(fn.name for fn in launched_app.fns.values() if fn.concurrency_id == glue.INTERACTIVE)
    assert interactive == Counter(
        respond=5, run=4, render=7, chat=1, attention=1, show_batch=1, find_image=1
    )  # chat, attention and CLIP, ahead of images


@pytest.mark.parametrize(
    "fields, present",
    [
        (dict(host="0.0.0.0"), False),  # hosted: no operator controls by default
        (dict(share=True, auth=("a", "b")), False),
        (dict(trust_forwarded_for=True), False),  # behind a proxy
        (dict(operator_controls=False), False),
        (dict(host="0.0.0.0", operator_controls=True), True),  # the operator asked for them
        (dict(), True),  # the laptop: loopback, no share
    ],
)
def test_operator_events_exist_only_where_operator_controls_are_on(launched_app, fields, present):
    """A second app, built and not launched, with hosting settings: "Unload all models" is not registered."""
    demo = app_module.build_app(app_settings(**fields))
    assert page_events(demo) == HEAVY_UI + VIEWS + LAB + (OPERATOR if present else Counter())
    buttons = [b for b in demo.blocks.values() if getattr(b, "value", None) == "Unload all models"]
    assert bool(buttons) == present


# --- what each route reaches ----------------------------------------------------------------


def test_run_refuses_every_event(app_url, config, launched_app):
    """``/run/<name>``, ``/api/<name>`` and ``/run`` with each ``fn_index`` answer 404: nothing runs beside the queue."""
    names = gradio_names(launched_app.fns)
    reached = []
    for dep in config["dependencies"]:
        data = page_defaults(config, dep)
        for name in {dep["api_name"], names[dep["id"]]} - {None}:
            for route in ("run", "api"):
                if post(app_url, f"/gradio_api/{route}/{name}", {"data": data}).status_code != 404:
                    reached.append(f"/{route}/{name}")
        if post(app_url, "/gradio_api/run/predict", {"data": data, "fn_index": dep["id"]}).status_code != 404:
            reached.append(f"/run fn_index={dep['id']}")
    assert reached == []


def test_call_reaches_the_documented_endpoints_and_nothing_else(app_url, config, launched_app):
    names = gradio_names(launched_app.fns)
    reached = set()
    for dep in config["dependencies"]:
        for name in {dep["api_name"], names[dep["id"]]} - {None}:
            response = post(app_url, f"/gradio_api/call/{name}", {"data": []})
            if response.status_code != 404:  # 422 "takes N values": the name reached an event
                reached.add(name)
    assert reached == DOCUMENTED


GOOD_CALLS = {  # a cheap request of each documented endpoint, on the fixture's tiny models
    "chat": GOOD,
    "attention": dict(text="the cat sat on the mat .", model="tiny-bert", layer=0, head=0),
    "text_to_image": dict(prompt="a red circle", model="tiny-sd", num_inference_steps=2, scheduler="DDIM"),
    "sample_latents": dict(model="digits-vae", seed=0, num_images=1),
    "interpolate": dict(model="digits-vae", a=[1.0] + [0.0] * 7, b=[0.0, 1.0] + [0.0] * 6, num_frames=2),
    "traverse": dict(model="digits-vae", seed=0, dims=[0], num_frames=2),
}


@pytest.fixture(scope="module")
def parameters(app_url) -> dict[str, list[dict]]:
    """Each documented endpoint's parameters, as /gradio_api/info lists them."""
    with httpx.Client(base_url=app_url, timeout=30) as http:
        info = http.get("/gradio_api/info").json()["named_endpoints"]
    return {name.lstrip("/"): endpoint["parameters"] for name, endpoint in info.items()}


def raw_data(parameters: list[dict], values: dict) -> list:
    """A full ``data`` list in the endpoint's order: ``values`` by name, the rest at their defaults."""
    return [values.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]


@pytest.mark.parametrize("name", sorted(DOCUMENTED - SHARE_API))  # share links: tests/sharing/test_share_links.py
def test_documented_endpoints_work_over_call_and_gradio_client(app_url, client, parameters, name):
    body = {"data": raw_data(parameters[name], GOOD_CALLS[name])}
    assert call(app_url, name, body).startswith("complete"), name
    assert client.predict(**GOOD_CALLS[name], api_name=f"/{name}") is not None


def test_queue_join_admits_the_documented_and_the_page_events(app_url, config, launched_app):
    """Every event of /config is admitted by index (the page works); each is cancelled at once, model
    jobs while they wait behind a held model slot. An index no event has is refused."""
    session = uuid.uuid4().hex
    admitted = []
    with model_slot_held(app_url):
        try:
            for dep in config["dependencies"]:
                response, _ = join(app_url, dep["id"], page_defaults(config, dep), session)
                assert response.status_code == 200, (launched_app.fns[dep["id"]].name, response.text)
                cancel(app_url, dep["id"], session, response.json()["event_id"])
                admitted.append(dep["id"])
        finally:
            for name in ("stop_session_runs", "stop_generation"):  # what a closed tab runs: ends a lab run
                join(app_url, fn_of(launched_app, name), [], session)
    unknown, _ = join(app_url, max(launched_app.fns) + 1, [])
    assert unknown.status_code == 400 and "no event" in unknown.text
    assert admitted == sorted(launched_app.fns)


def test_operator_control_answers_only_a_caller_on_this_machine(app_url, launched_app):
    """Registered on the laptop; a visitor through a proxy on this machine (their own address) is refused."""
    unload = fn_of(launched_app, "unload_models")
    far, session = join(app_url, unload, [], headers={"X-Forwarded-For": ELSEWHERE})
    message = completion(app_url, session, far.json()["event_id"])
    assert not message["success"] and "operator control" in json.dumps(message["output"])
    near, session = join(app_url, unload, [])
    assert completion(app_url, session, near.json()["event_id"])["success"]


# --- too few values, numbers past a float -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTED - SHARE_API))  # share links: tests/sharing/test_share_links.py
def test_too_few_values_get_a_message_on_every_route(app_url, client, launched_app, parameters, name):
    """Raw JSON with one value: /call and /queue/join say how many the endpoint takes (or, where every
    later parameter has a plain default, fill them in: /attention with only a text runs); /run is closed."""
    count = len(parameters[name])
    by_call = post(app_url, f"/gradio_api/call/{name}", {"data": ["hi"]})
    by_join, _ = join(app_url, fn_of(launched_app, name), ["hi"])
    for response in (by_call, by_join):
        if name in DEFAULTS_FILLED:
            assert response.status_code == 200, response.text[:300]
            continue
        assert response.status_code == 422
        assert f"/{name} takes {count} values" in response.text and "the request sent 1" in response.text
    assert post(app_url, f"/gradio_api/run/{name}", {"data": ["hi"]}).status_code == 404
    assert client.predict(**GOOD_CALLS[name], api_name=f"/{name}") is not None


def test_too_few_values_for_a_page_event_get_a_message(app_url, launched_app):
    response, _ = join(app_url, fn_of(launched_app, "respond"), [GOOD["model"]])
    assert response.status_code == 422 and "takes 11 values" in response.text and "sent 1" in response.text


def test_a_raw_client_may_leave_out_trailing_parameters_with_defaults(app_url):
    """/chat's ``mode`` came later: a raw client sending the ten values it knew still gets a reply."""
    data = [GOOD["message"], [], "", 0.0, 0.9, 50, 8, 1.0, 0, GOOD["model"]]
    event = post(app_url, "/gradio_api/call/chat", {"data": data})
    assert event.status_code == 200, event.text[:300]
    with httpx.stream("GET", f"{app_url}gradio_api/call/chat/{event.json()['event_id']}", timeout=60) as stream:
        body = "".join(stream.iter_text())
    assert "event: complete" in body and "event: error" not in body


NUMERIC = {  # every numeric parameter of the documented endpoints (lists of numbers too)
    "chat": ["temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty", "seed"],
    "text_to_image": ["seed", "num_inference_steps", "guidance_scale", "width", "height", "num_images_per_prompt",
                      "steps", "count"],
    "sample_latents": ["seed", "num_images", "scale", "latents", "count"],
    "interpolate": ["a", "b", "num_frames", "steps"],
    "traverse": ["seed", "dims", "span", "num_frames", "steps"],
    "attention": ["layer", "head"],
    **{name: [] for name in SHARE_API},  # text and a JSON payload (its numbers: tests/sharing/test_share_links.py)
}  # fmt: skip
NESTING = {"a": 1, "b": 1, "dims": 1, "latents": 2}  # a list (of lists) of numbers
ALIASES = {"steps": ("num_inference_steps", "num_frames"), "count": ("num_images", "num_images_per_prompt")}


def test_every_numeric_parameter_is_listed(parameters):
    """NUMERIC is what /gradio_api/info says: numbers, and lists (every list but the chat history)."""

    def numeric_or_list(p: dict) -> bool:
        kinds = [p["type"], *p["type"].get("oneOf", [])]
        return any(k.get("type") in ("integer", "number", "array") for k in kinds) and p["parameter_name"] != "history"

    assert {
        name: [p["parameter_name"] for p in params if numeric_or_list(p)] for name, params in parameters.items()
    } == NUMERIC


def bad_values(name: str, parameter: str, value: object) -> dict:
    """The endpoint's good request with ``value`` (nested as the parameter takes it) on ``parameter``."""
    for _ in range(NESTING.get(parameter, 0)):
        value = [value] + ([0.0] * 7 if parameter != "dims" else [])
    values = {**GOOD_CALLS[name], parameter: value}
    for new_name in ALIASES.get(parameter, ()):  # a deprecated name alone, or it is refused for doubling
        values.pop(new_name, None)
    return values


BIG_CASES = [pytest.param(name, parameter) for name, params in sorted(NUMERIC.items()) for parameter in params]


@pytest.mark.parametrize("name, parameter", BIG_CASES)
def test_a_400_digit_integer_is_refused_by_name_and_the_next_request_works(app_url, parameters, name, parameter):
    """The raw JSON body carries a 400-digit integer on one numeric parameter (inside the list for list
    parameters): a clear message naming the parameter, then the endpoint's next request works."""
    body = json.dumps({"data": raw_data(parameters[name], bad_values(name, parameter, BIG))})
    assert str(BIG) in body  # Python's json writes the integer itself, all 400 digits
    kind, _, data = call(app_url, name, body).partition("\n")
    assert call(app_url, name, {"data": raw_data(parameters[name], GOOD_CALLS[name])}).startswith("complete")
    message = json.loads(data)["error"]
    assert kind == "error" and message and "failed (" not in message, message
    assert re.search(rf"\b{parameter}\b", message), message


@pytest.mark.parametrize("literal", ["1e309", "-1e309"])
def test_traverse_dims_past_a_float_are_refused_by_name(app_url, parameters, literal):
    params = parameters["traverse"]
    body = json.dumps({"data": raw_data(params, {**GOOD_CALLS["traverse"], "dims": ["HERE"]})})
    events = call(app_url, "traverse", body.replace('"HERE"', literal))
    assert call(app_url, "traverse", {"data": raw_data(params, GOOD_CALLS["traverse"])}).startswith("complete")
    assert events.startswith("error") and "failed (" not in events, events[:300]
    assert re.search(r"\bdims\b", events), events[:300]


def test_page_number_inputs_past_a_float_are_refused_at_admission(app_url, config, launched_app):
    """Every gr.Number / gr.Slider input of every page event, given a 400-digit integer, NaN or 1e309 by
    raw JSON: refused before it is queued (Gradio's own preprocessing would fail with no message), with
    a message naming the input, shown on that input."""
    import gradio as gr

    unclear, tried = [], 0
    with httpx.Client(base_url=app_url, timeout=30) as http:  # refusals never reset the connection
        for dep in config["dependencies"]:
            fn = launched_app.fns[dep["id"]]
            for i, component in enumerate(fn.inputs):
                if not isinstance(component, (gr.Number, gr.Slider)):
                    continue
                name = server.Admission.parameter(fn, i)
                for literal in (str(BIG), "NaN", "1e309"):
                    data = page_defaults(config, dep)
                    data[i] = "HERE"
                    body = json.dumps({"data": data, "fn_index": dep["id"], "session_hash": uuid.uuid4().hex})
                    response = http.post(
                        "/gradio_api/queue/join",
                        content=body.replace('"HERE"', literal),
                        headers={"content-type": "application/json"},
                    )
                    tried += 1
                    answer = response.json()["detail"] if response.status_code == 422 else []
                    refused = [k for k, entry in enumerate(answer) if not entry["is_valid"]]
                    if refused != [i] or not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", answer[i]["message"]):
                        unclear.append((fn.name, name, literal, response.status_code, response.text[:120]))
    assert tried > 100 and unclear == []


# --- one visitor cannot monopolise the model slot -------------------------------------------------


@pytest.fixture(scope="module")
def hosted_url(launched_app, tmp_path_factory):
    """The app as hosted behind a proxy (trust_forwarded_for): the default per-visitor limit applies."""
    settings = app_settings(port=free_port(), trust_forwarded_for=True, cache_dir=tmp_path_factory.mktemp("h"))
    assert settings.jobs_per_visitor == JOBS_PER_VISITOR_HOSTED
    demo = app_module.build_app(settings)
    app_module.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def jobs(client: Client, count: int, **overrides):
    submitted = [client.submit(**{**GOOD, **overrides}, api_name="/chat") for _ in range(count)]
    deadline = time.monotonic() + 30
    while any(job.status().code in (Status.STARTING, Status.JOINING_QUEUE) for job in submitted):
        assert time.monotonic() < deadline, [job.status() for job in submitted]
        time.sleep(0.02)
    return submitted


def test_one_visitor_gets_at_most_the_limit_and_others_still_get_in(hosted_url, parameters):
    """With the model slot held, one visitor's N jobs wait in the queue and jobs N+1, N+2 are refused with
    the message (gradio_client raises with it; the page gets it as a plain error, which it shows as a
    toast); another visitor still gets in; a cancelled job frees one place; when the jobs have run, the
    visitor can submit N again."""
    limit = JOBS_PER_VISITOR_HOSTED
    ann, bob = visitor_client(hosted_url, "198.51.100.1"), visitor_client(hosted_url, "198.51.100.2")
    with model_slot_held(hosted_url):
        held = jobs(ann, limit)
        assert all(job.status().code == Status.IN_QUEUE for job in held)
        message = f"You already have {limit} model jobs queued or running"
        with pytest.raises(ValidationError, match=message):
            ann.submit(**GOOD, api_name="/chat").result(timeout=30)
        as_the_page = {"X-Forwarded-For": "198.51.100.1", "x-gradio-user": "app"}
        chat = fn_of_url(hosted_url, "chat")
        refused, _ = join(hosted_url, chat, raw_data(parameters["chat"], GOOD), headers=as_the_page)
        assert refused.status_code == 400 and refused.json()["detail"].startswith(message)
        (other,) = jobs(bob, 1)
        assert other.status().code == Status.IN_QUEUE
        held[0].cancel()
        held[0] = jobs(ann, 1)[0]  # the cancelled job's place is free again
        with pytest.raises(ValidationError, match="already have"):
            ann.submit(**GOOD, api_name="/chat").result(timeout=30)
    assert all(job.result(timeout=60) for job in [*held, other])
    assert all(job.result(timeout=60) for job in jobs(ann, limit))


def test_failed_jobs_free_the_visitor_count(hosted_url):
    """Twice the limit of jobs that fail (a model that cannot load): afterwards the visitor still gets
    the whole limit, and no more."""
    limit = JOBS_PER_VISITOR_HOSTED
    ann = visitor_client(hosted_url, "198.51.100.3")
    for _ in range(2):
        for job in jobs(ann, limit, model="broken-chat"):
            with pytest.raises(Exception, match="failed to load"):
                job.result(timeout=60)
    with model_slot_held(hosted_url):
        held = jobs(ann, limit)
        assert all(job.status().code == Status.IN_QUEUE for job in held)
        with pytest.raises(ValidationError, match="already have"):
            ann.submit(**GOOD, api_name="/chat").result(timeout=30)
    assert all(job.result(timeout=60) for job in held)


def test_concurrent_joins_of_one_visitor_cannot_overshoot_the_limit(hosted_url, parameters):
    """Ten raw joins at once from one address, while the slot is held: exactly the limit is admitted."""
    chat = fn_of_url(hosted_url, "chat")
    data = raw_data(parameters["chat"], GOOD)
    headers = {"X-Forwarded-For": "198.51.100.4"}
    with model_slot_held(hosted_url), ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: join(hosted_url, chat, data, headers=headers), range(10)))
        admitted = [(r.json()["event_id"], session) for r, session in answers if r.status_code == 200]
        for event_id, session in admitted:
            cancel(hosted_url, chat, session, event_id)
    refused = [r for r, _ in answers if r.status_code == 422 and "already have" in r.text]
    assert len(admitted) == JOBS_PER_VISITOR_HOSTED and len(refused) == 10 - JOBS_PER_VISITOR_HOSTED


# --- who a visitor is -----------------------------------------------------------------------


def fake_request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "headers": headers, "client": (peer, 5000)})


def test_forwarded_for_is_trusted_only_when_the_setting_says_so():
    spoofed = fake_request("198.51.100.9", "10.1.1.1, 203.0.113.5")
    assert server.visitor(spoofed) == "198.51.100.9"  # default: the peer; the header is anyone's to write
    assert server.visitor(spoofed, trust_forwarded_for=True) == "203.0.113.5"  # the address our proxy saw
    assert server.visitor(fake_request("198.51.100.9"), trust_forwarded_for=True) == "198.51.100.9"


def test_returned_files_are_swept_by_gradio(launched_app):
    assert launched_app.delete_cache == server.TEMP_FILES
