"""The live training lab: real steps on the digits, on a fixed seed; the worker thread's life."""

import contextlib
import threading
import time
import types

import pytest
import torch

from demos.latent.lab import TrainingRun

pytestmark = pytest.mark.fast


def test_vae_loss_goes_down():
    run = TrainingRun("vae", seed=0)
    for _ in range(150):
        run.step()
    losses = [h["loss"] for h in run.history]
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20
    assert run.samples().shape == (16, 1, 16, 16)
    assert set(run.loss_frame()["curve"]) == {"loss", "reconstruction", "KL"}


def test_gan_steps_change_its_samples_and_are_reproducible():
    def train(seed: int) -> TrainingRun:
        run = TrainingRun("gan", seed=seed)
        for _ in range(20):
            run.step()
        return run

    before = TrainingRun("gan", seed=1).samples()
    a, b = train(1), train(1)
    assert not torch.allclose(before, a.samples())
    assert torch.equal(a.samples(), b.samples())
    assert {"discriminator", "generator"} <= set(a.history[-1])


def _lab_threads():
    return [t for t in threading.enumerate() if t.name == "training-lab" and t.is_alive()]


def test_start_pause_stop_frees_the_worker():
    run = TrainingRun("vae")
    run.start()
    deadline = time.time() + 20
    while run.steps < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert run.steps >= 5 and _lab_threads()
    run.pause()
    time.sleep(0.3)
    paused_at = run.steps
    time.sleep(0.5)
    assert run.steps == paused_at and not run.running
    run.stop()
    assert not _lab_threads()


def test_a_run_draws_only_from_its_own_generator():
    """Building and training a run leaves torch's global generator as it was (other requests'
    seeded results can't change), and the same seed builds the same weights."""
    before = torch.random.get_rng_state()
    a, b = TrainingRun("gan", seed=3), TrainingRun("gan", seed=3)
    for _ in range(3):
        a.step()
    TrainingRun("vae", seed=3).step()
    assert torch.equal(torch.random.get_rng_state(), before)
    fresh = TrainingRun("gan", seed=3)
    assert all(torch.equal(v, fresh.critic.state_dict()[k]) for k, v in b.critic.state_dict().items())
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in b.model.state_dict().items())


def test_the_loop_runs_each_step_on_a_model_worker():
    run = TrainingRun("vae")
    threads, step = [], run.step

    def recorded():
        threads.append(threading.current_thread().name)
        return step()

    run.step = recorded
    run.start()
    deadline = time.time() + 20
    while len(threads) < 3 and time.time() < deadline:
        time.sleep(0.05)
    run.stop()
    assert len(threads) >= 3 and all(name.startswith("model-work") for name in threads), threads


def test_sessions_share_a_few_slots_and_a_closed_tab_frees_its_own():
    import gradio as gr
    import pytest

    from demos.latent import lab as training_lab

    with _sessions("lab-a", "lab-b", "lab-c") as (first, second, third):
        grid, losses, status, _ = training_lab.lab_step("vae", first)
        assert grid.size == (8 * 66 + 2, 2 * 66 + 2) and "VAE" in status and "step 1" in status
        training_lab.lab_step("gan", second)
        with pytest.raises(gr.Error, match="training runs are going already"):
            training_lab.lab_start("vae", third)
        training_lab.stop_session_runs(first)
        assert "GAN" in training_lab.lab_start("gan", third)[2]
        assert training_lab.lab_view(first)[2].startswith("No training run")


def _wait(condition, seconds: float = 20.0) -> bool:
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


@contextlib.contextmanager
def _sessions(*names):
    """Requests from sessions with these names; their runs are stopped after, and no lab thread is left."""
    from demos.latent import lab as training_lab

    requests = [types.SimpleNamespace(session_hash=name) for name in names]
    try:
        yield requests
    finally:
        for request in requests:
            training_lab.stop_session_runs(request)  # the tab closing: its run stops, its models go
    assert not _lab_threads()


def test_runs_nobody_looks_at_give_their_slot_up_when_the_lease_runs_out(monkeypatch):
    """Two API clients start runs and never come back (no heartbeat, no unload): a third is refused
    while their leases last; once they run out the runs stop by themselves and the third gets a slot."""
    import gradio as gr
    import pytest

    from demos.latent import lab as training_lab

    with _sessions("lease-a", "lease-b", "lease-c") as (first, second, third):
        training_lab.lab_start("vae", first)
        training_lab.lab_start("gan", second)
        assert _wait(lambda: len(_lab_threads()) == 2)
        with pytest.raises(gr.Error, match="2 training runs are going already"):
            training_lab.lab_start("vae", third)
        monkeypatch.setattr(training_lab, "LAB_LEASE_S", 0.3)
        assert _wait(lambda: not _lab_threads(), 10), "runs nobody looks at must stop by themselves"
        assert "VAE" in training_lab.lab_start("vae", third)[2]
        assert "stopped at step" in training_lab.lab_view(first)[2]  # the page says why it stopped
        assert "nobody looked at it" in training_lab.lab_view(first)[2]


def test_views_renew_the_lease(monkeypatch):
    from demos.latent import lab as training_lab

    monkeypatch.setattr(training_lab, "LAB_LEASE_S", 1.0)
    with _sessions("lease-watched") as (watched,):
        training_lab.lab_step("vae", watched)
        for _ in range(6):  # 1.8 s in all, a view every 0.3 s: longer than the lease, never without a look
            time.sleep(0.3)
            assert "step 1" in training_lab.lab_view(watched)[2]
        time.sleep(1.3)
        assert "stopped at step 1 (nobody looked at it" in training_lab.lab_view(watched)[2]


def test_finished_and_failed_runs_free_their_slots(monkeypatch):
    """A run that reached LAB_MAX_STEPS and one whose step failed stay visible to their sessions
    but no longer hold a slot; pressing Start again gives a fresh run."""
    from demos.latent import lab as training_lab

    monkeypatch.setattr(training_lab, "LAB_MAX_STEPS", 3)
    with _sessions("finish-a", "finish-b", "finish-c") as (done, failed, third):
        training_lab.lab_start("vae", done)
        training_lab.lab_step("gan", failed)
        broken = training_lab._run_of(failed)

        def boom():
            raise RuntimeError("a failing step")

        broken.step = boom
        training_lab.lab_start("gan", failed)
        assert _wait(lambda: not _lab_threads())
        assert "finished at 3 steps" in training_lab.lab_view(done)[2]
        assert "stopped: The training step failed (RuntimeError)" in training_lab.lab_view(failed)[2]
        assert "GAN" in training_lab.lab_start("gan", third)[2]  # both slots were free
        finished = training_lab._run_of(done)
        training_lab.lab_start("vae", done)
        assert training_lab._run_of(done) is not finished  # a fresh run in the slot the failed run gave up


# --- what the lab shows is true: Stop keeps the picture, Pause reads Resume, the model lives on ----


def test_stop_keeps_the_grid_and_curves_and_says_where_it_stopped():
    """Stop used to blank the grid and the loss curves; now they stay as they were (no update) and the
    status says where the run stopped, on the next views too."""
    import gradio as gr

    from demos.latent import lab as training_lab

    with _sessions("stop-keeps") as (session,):
        training_lab.lab_step("vae", session)
        grid, losses, status, _ = training_lab.lab_step("vae", session)
        assert grid is not None and isinstance(losses, gr.LinePlot) and "step 2" in status
        grid, losses, status, button = training_lab.lab_stop(session)
        assert grid == gr.skip() and losses == gr.skip(), "Stop must leave the grid and curves as they are"
        assert "stopped at step 2" in status and "lab: VAE (this session)" in status
        assert (button.value, button.interactive) == ("Pause", False)
        assert not _lab_threads()
        grid, losses, status, _ = training_lab.lab_view(session)  # the 2 s timer after the stop
        assert grid == gr.skip() and losses == gr.skip() and "stopped at step 2" in status


def test_pause_reads_resume_while_paused_and_resumes():
    from demos.latent import lab as training_lab

    assert training_lab.pause_label(None) == ("Pause", False)
    with _sessions("pause-resume") as (session,):
        *_, button = training_lab.lab_start("vae", session)
        assert (button.value, button.interactive) == ("Pause", True)
        run = training_lab._run_of(session)
        assert _wait(lambda: run.steps >= 2)
        *_, status, button = training_lab.lab_pause("Pause", session)
        paused_at = run.steps  # at once: the step in flight has ended when Pause answers
        assert button.value == "Resume" and "paused" in status and not run.running
        assert f"step {paused_at:,} ·" in status, "the status shows where the run stays"
        time.sleep(0.5)
        assert run.steps == paused_at
        *_, status, button = training_lab.lab_pause("Resume", session)  # the same button, now reading Resume
        assert button.value == "Pause" and "training" in status
        assert _wait(lambda: run.steps > paused_at + 2), "Resume must train on"
        training_lab.lab_pause("Resume", session)  # a stale label never does the opposite: still training
        assert run.running
        *_, button = training_lab.lab_step("vae", session)  # a single step pauses: the button says Resume
        assert button.value == "Resume" and not run.running


def test_pause_refuses_a_label_it_never_shows():
    import gradio as gr
    import pytest

    from demos.latent import lab as training_lab

    with pytest.raises(gr.Error, match="button"):
        training_lab.lab_pause("Explode", types.SimpleNamespace(session_hash="bad-label"))


def test_a_session_decodes_with_its_own_lab_model_only():
    """Once a run has trained, its session (and no other) can use the model elsewhere: a copy of the
    live weights, kept when the run stops or is replaced by a run of the other kind."""
    import pytest

    from demos.latent import lab as training_lab

    with _sessions("own-a", "own-b") as (mine, theirs):
        assert training_lab.lab_kinds(mine) == ()
        training_lab._claim(mine, "vae", replace=False)  # a run, not started
        assert training_lab.lab_kinds(mine) == ()  # no step yet: no model to offer
        training_lab.lab_step("vae", mine)
        assert training_lab.lab_kinds(mine) == ("vae",) and training_lab.lab_kinds(theirs) == ()
        lm = training_lab.lab_model(mine, "vae")
        assert (lm.key, lm.kind, lm.latent_dim, lm.dataset) == ("lab:vae", "vae", 8, "digits")
        with pytest.raises(ValueError, match="no lab VAE"):
            training_lab.lab_model(theirs, "vae")
        with pytest.raises(ValueError, match="no lab GAN"):
            training_lab.lab_model(mine, "gan")
        before = {k: v.clone() for k, v in lm.model.state_dict().items()}
        training_lab.lab_step("vae", mine)
        assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in before.items()), "a copy, not the live model"
        assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
        training_lab.lab_start("gan", mine)  # another kind replaces the run: the VAE is kept
        training_lab.lab_step("gan", mine)
        assert training_lab.lab_kinds(mine) == ("vae", "gan")
        training_lab.lab_stop(mine)
        assert training_lab.lab_kinds(mine) == ("vae", "gan")  # after Stop, both are still there
        assert training_lab.lab_model(mine, "gan").kind == "gan"
        training_lab.stop_session_runs(mine)  # the tab closes: its models go
        assert training_lab.lab_kinds(mine) == ()
    with pytest.raises(ValueError, match="lab model"):
        training_lab.lab_model(mine, "unet")


def test_kept_lab_models_are_bounded_in_number_and_age(monkeypatch):
    from demos.latent import lab as training_lab

    monkeypatch.setattr(training_lab, "LAB_KEPT_SESSIONS", 2)
    with _sessions("kept-a", "kept-b", "kept-c") as sessions:
        for session in sessions:
            training_lab.lab_step("gan", session)
            training_lab.lab_stop(session)
        assert [training_lab.lab_kinds(s) for s in sessions] == [(), ("gan",), ("gan",)]  # the oldest went
        assert len(training_lab._kept) == 2
        monkeypatch.setattr(training_lab, "LAB_KEPT_S", 0.0)
        time.sleep(0.01)
        assert [training_lab.lab_kinds(s) for s in sessions] == [(), (), ()] and not training_lab._kept


def test_the_loss_plot_never_starts_empty_and_each_kind_has_its_colours():
    """Gradio 6.31's plot keeps the series of its first drawing: an empty first frame would stay blank
    and a GAN's curves after a VAE's would not show, so no frame before a step, one colour map per kind."""
    import gradio as gr

    from demos.latent import lab as training_lab

    vae, gan = TrainingRun("vae"), TrainingRun("gan")
    assert training_lab.loss_plot(vae) == gr.skip()
    for run in (vae, gan):
        run.step()
    frames = {run.kind: training_lab.loss_plot(run) for run in (vae, gan)}
    assert set(frames["vae"].color_map) == {"loss", "reconstruction", "KL"}
    assert set(frames["gan"].color_map) == {"discriminator", "generator"}
    assert frames["vae"].color_map != frames["gan"].color_map
    typed = gr.LinePlot(x="step", y="loss", color="curve").postprocess(TrainingRun("vae").loss_frame())
    assert typed.datatypes == {"step": "quantitative", "loss": "quantitative", "curve": "nominal"}


def test_the_loss_plot_has_no_fixed_height_that_would_clip_its_legend():
    import gradio as gr

    from demos.latent import lab as training_lab
    from shared import runtime
    from tests.helpers import app_settings

    runtime.configure(app_settings())
    with gr.Blocks():
        lab = training_lab.build_ui()
    assert lab.losses.height is None


def test_the_loss_curves_end_at_the_last_step_and_stay_small():
    run = TrainingRun("vae")
    for _ in range(12):
        run.step()
    assert sorted(set(run.loss_frame()["step"])) == list(range(1, 13))  # few steps: every one
    assert sorted(set(run.loss_frame(points=5)["step"])) == [1, 4, 7, 10, 12]  # thinned, ending at the last
    assert len(run.loss_frame(points=5)) == 5 * 3  # three curves
