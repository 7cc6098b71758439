"""The live training lab: real steps on the digits, on a fixed seed; the worker thread's life."""

import contextlib
import threading
import time
import types

import torch

from demos.training_lab import TrainingRun


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

    from demos import training_lab

    with _sessions("lab-a", "lab-b", "lab-c") as (first, second, third):
        grid, losses, status = training_lab.lab_step("vae", first)
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
    from demos import training_lab

    requests = [types.SimpleNamespace(session_hash=name) for name in names]
    try:
        yield requests
    finally:
        for request in requests:
            training_lab.lab_stop(request)
    assert not _lab_threads()


def test_runs_nobody_looks_at_give_their_slot_up_when_the_lease_runs_out(monkeypatch):
    """Two API clients start runs and never come back (no heartbeat, no unload): a third is refused
    while their leases last; once they run out the runs stop by themselves and the third gets a slot."""
    import gradio as gr
    import pytest

    from demos import training_lab

    with _sessions("lease-a", "lease-b", "lease-c") as (first, second, third):
        training_lab.lab_start("vae", first)
        training_lab.lab_start("gan", second)
        assert _wait(lambda: len(_lab_threads()) == 2)
        with pytest.raises(gr.Error, match="2 training runs are going already"):
            training_lab.lab_start("vae", third)
        monkeypatch.setattr(training_lab, "LAB_LEASE_S", 0.3)
        assert _wait(lambda: not _lab_threads(), 10), "runs nobody looks at must stop by themselves"
        assert "VAE" in training_lab.lab_start("vae", third)[2]
        assert training_lab.lab_view(first)[2].startswith("No training run")


def test_views_renew_the_lease(monkeypatch):
    from demos import training_lab

    monkeypatch.setattr(training_lab, "LAB_LEASE_S", 1.0)
    with _sessions("lease-watched") as (watched,):
        training_lab.lab_step("vae", watched)
        for _ in range(6):  # 1.8 s in all, a view every 0.3 s: longer than the lease, never without a look
            time.sleep(0.3)
            assert "step 1" in training_lab.lab_view(watched)[2]
        time.sleep(1.3)
        assert training_lab.lab_view(watched)[2].startswith("No training run")


def test_finished_and_failed_runs_free_their_slots(monkeypatch):
    """A run that reached LAB_MAX_STEPS and one whose step failed stay visible to their sessions
    but no longer hold a slot; pressing Start again gives a fresh run."""
    from demos import training_lab

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
