"""End to end: a shortened GRPO run, resume equivalence (including after SIGKILL mid-run), and the
errors a run must give before work is lost. Uses a tiny model and pool so it runs in seconds."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from testing_utils import training_rows

from scalingrl.config import load_config, to_dict

TINY = [
    "steps=8",
    "batch_size=4",
    "rollout.group_size=4",
    "rollout.max_new_tokens=20",
    "save_every=4",
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=64",
    "model.tiny.warmstart_steps=40",
    "model.tiny.warmstart_batch=16",
    "data.synthetic.size=3000",
    "eval.size=16",
    "eval.samples=2",
    "eval.every=0",
    "progress_bar=false",
    "log_every=4",
    "optim.lr=1e-3",
    "optim.threads=1",
]


pytestmark = pytest.mark.usefixtures("model_cache")  # a fresh quickstart-model cache for this module


def _config(out_dir, *extra):
    config = load_config(None, TINY + list(extra))
    config.output_dir = str(out_dir)
    return config


DETERMINISTIC = (
    "step",
    "prompt_ids",
    "reward_mean",
    "pass_rate",
    "zero_variance_fraction",
    "response_length_mean",
    "loss",
    "unique_prompts_used",
    "selected_levels",
)


def _comparable(rows):
    return [{key: row.get(key) for key in DETERMINISTIC} for row in rows]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from scalingrl.train import main

    out = tmp_path_factory.mktemp("full")
    summary = main(_config(out))
    return out, summary


def test_end_to_end_records(full_run):
    out, summary = full_run
    for key in (
        "initial_eval_accuracy",
        "final_eval_accuracy",
        "unique_prompts_used",
        "pool_size",
        "steps",
        "wall_clock_s",
    ):
        assert key in summary
    assert summary["steps"] == 8 and summary["pool_size"] == 3000 and 4 <= summary["unique_prompts_used"] <= 32
    assert json.loads((out / "summary.json").read_text())["steps"] == 8
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["rollout"]["group_size"] == 4 and resolved["model"]["tiny"]["hidden_size"] == 32
    rows = training_rows(out)
    assert [row["step"] for row in rows] == list(range(1, 9))
    for key in (
        "reward_mean",
        "reward_std",
        "pass_rate",
        "zero_variance_fraction",
        "entropy_mean",
        "response_length_mean",
        "kl",
        "clip_fraction",
        "grad_norm",
        "tokens_per_s",
        "time_rollout_s",
        "time_reward_s",
        "time_update_s",
        "time_selection_s",
        "pool_size",
        "explore_fraction",
    ):
        assert key in rows[-1], key
    assert (out / "checkpoints" / "step-000008" / "model.safetensors").exists()
    assert any((out / "tensorboard").iterdir())
    for name in ("report.md", "reward_eval.png", "pool_mix.png", "difficulty.png"):
        assert (out / "report" / name).exists(), name
    assert (out / "selection_log.jsonl").exists() or any(out.glob("selection_log*"))


def test_resume_makes_identical_selections_and_metrics(full_run, tmp_path):
    from scalingrl.train import main

    full_dir, _ = full_run
    main(_config(tmp_path, "steps=4"))
    main(_config(tmp_path), resume=True)
    assert _comparable(training_rows(tmp_path)) == _comparable(training_rows(full_dir))
    from scalingrl.runlog.selection_log import read_selection_log

    resumed, full = (
        read_selection_log(tmp_path / "selection_log.jsonl"),
        read_selection_log(full_dir / "selection_log.jsonl"),
    )
    assert [r["step"] for r in resumed] == list(range(8))
    assert [r["prompt_ids"] for r in resumed] == [r["prompt_ids"] for r in full]


def test_sigkill_mid_run_resumes_from_last_complete_checkpoint(full_run, tmp_path):
    full_dir, _ = full_run
    config = _config(tmp_path, "save_every=2", "tensorboard=false", "report=false")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(to_dict(config)))
    # The in-process runs above set torch.distributed's env (and hold MASTER_PORT); the child picks its own.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "scalingrl.train", "--config", str(tmp_path / "cfg.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.time() + 300
    while not (tmp_path / "checkpoints" / "step-000002").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode in (-signal.SIGKILL, 0), stderr.decode()[-2000:]
    from scalingrl.checkpoint import latest_checkpoint
    from scalingrl.train import main

    assert latest_checkpoint(tmp_path / "checkpoints") is not None
    main(load_config(tmp_path / "cfg.yaml"), resume=True)
    assert _comparable(training_rows(tmp_path)) == _comparable(training_rows(full_dir))


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the "killed" run leaves its record files open, as a kill does
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_kill_right_after_a_checkpoint_loses_no_record(full_run, tmp_path, monkeypatch):
    """A kill the instant a checkpoint is published (before anything else of that step runs) resumes to
    the full run's records: every step's metrics row is written before its checkpoint. The reverse order
    lost the row of the checkpoint's step (seen once in the 2-process SIGKILL test, by timing)."""
    from scalingrl import train

    full_dir, _ = full_run
    real_save = train.save

    def save_then_die(run, step):
        real_save(run, step)
        raise KeyboardInterrupt(f"killed right after checkpoint {step}")

    monkeypatch.setattr(train, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt, match="right after checkpoint 2"):
        train.main(_config(tmp_path, "save_every=2"))
    monkeypatch.setattr(train, "save", real_save)
    train.main(_config(tmp_path, "save_every=2"), resume=True)
    assert _comparable(training_rows(tmp_path)) == _comparable(training_rows(full_dir))


def test_errors_before_work_is_lost(full_run, tmp_path):
    from scalingrl.train import cli

    full_dir, _ = full_run
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="not writable"):
        cli(["--config", "/dev/null", "--output-dir", str(blocker / "run")] + TINY)
    with pytest.raises(SystemExit, match="already holds checkpoints; pass --resume"):
        cli(["--config", "/dev/null", "--output-dir", str(full_dir)] + TINY)
    with pytest.raises(SystemExit, match="does not exist"):
        cli(
            [
                "--config",
                "/dev/null",
                "--output-dir",
                str(tmp_path / "r"),
                "data.source=file",
                f"data.path={tmp_path / 'missing.jsonl'}",
            ]
            + TINY
        )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match="is empty"):
        cli(
            ["--config", "/dev/null", "--output-dir", str(tmp_path / "r"), "data.source=file", f"data.path={empty}"]
            + TINY
        )
    with pytest.raises(SystemExit, match="group_size must be >= 2"):
        cli(["--config", "/dev/null", "rollout.group_size=1"])


def test_corrupt_checkpoint_on_resume(full_run, tmp_path):
    import shutil

    from scalingrl.train import cli

    full_dir, _ = full_run
    run = tmp_path / "run"
    shutil.copytree(full_dir, run)
    model = run / "checkpoints" / "step-000008" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(SystemExit, match="does not match its checksum"):
        cli(["--config", "/dev/null", "--output-dir", str(run), "--resume"] + TINY)
    with pytest.raises(SystemExit, match="incompatible configuration"):
        cli(
            ["--config", "/dev/null", "--output-dir", str(full_dir), "--resume", "batch_size=2"]
            + TINY[2:]
            + ["steps=8"]
        )


def test_eval_cli_on_a_run_and_a_checkpoint(full_run, tmp_path):
    from scalingrl.eval import main as eval_main

    full_dir, _ = full_run
    result = eval_main([str(full_dir), "eval.size=8", "--output", str(tmp_path / "eval.json")])
    assert 0.0 <= result["accuracy"] <= 1.0 and result["n_problems"] == 8
    assert json.loads((tmp_path / "eval.json").read_text())["n_samples"] == 2
    checkpoint = full_dir / "checkpoints" / "step-000008"
    assert eval_main([str(checkpoint), "eval.size=8"])["accuracy"] == result["accuracy"]


@pytest.mark.parametrize(
    "method", ["uniform", "random_subset", "dapo", "adarft", "mopps", "greso", "speed", "des_screened"]
)
def test_every_selection_method_runs_through_the_same_loop(method, tmp_path):
    from scalingrl.train import main

    chosen = ["selection.method=des", "selection.des.screen=true"] if method == "des_screened" else []
    chosen = chosen or [f"selection.method={method}"]
    summary = main(_config(tmp_path, "steps=2", *chosen, "tensorboard=false", "report=false"))
    assert summary["selection_method"] == method.removesuffix("_screened") and summary["steps"] == 2
    assert summary["selection_des_screen"] == (method == "des_screened")
    rows = training_rows(tmp_path)
    assert len(rows) == 2
    screens = method in ("speed", "des_screened")
    assert all((row["screen_rollouts"] > 0) == screens for row in rows)


def test_speed_screening_round_trains_the_prompts_screen_chose(tmp_path, monkeypatch):
    """The screening hook in grpo_step over 2 rollout shards: screen sees each candidate's own samples in
    candidate order (rewards and correct flags), and the step trains (and records) exactly the prompts it
    returned. Screening samples are stubbed so that a candidate's rewards vary iff its prompt text has even
    length, and its correct flags follow another pattern of that length."""
    from scalingrl import selection, train

    calls, pools = [], []
    original_screen, original_sample = selection.SPEEDSelector.screen, train._sample_and_score

    def recording_screen(self, chosen, rewards, batch_size, correct):
        positions = original_screen(self, chosen, rewards, batch_size, correct)
        calls.append((chosen.prompt_ids.copy(), np.asarray(rewards).copy(), positions.copy(), correct.copy()))
        return positions

    def parity_sample(run, shard_rows, group, seed):
        if group != 3:  # the full groups (G = 4) are real rollouts
            return original_sample(run, shard_rows, group, seed)
        pools.append(run.pool)
        varies = np.array([len(row["prompt"]) % 2 == 0 for row in shard_rows])
        rewards = np.zeros((len(shard_rows), group))
        rewards[varies, 0] = 1.0
        flat = rewards.reshape(-1)
        # Correct flags that are not the rewards (as with a format reward): each row's own pattern.
        correct = np.array([[(len(row["prompt"]) + j) % 3 == 0 for j in range(group)] for row in shard_rows])
        return None, flat, correct.reshape(-1), np.ones(flat.size, bool), np.zeros(flat.size, bool), 0.0, 0.0

    monkeypatch.setattr(selection.SPEEDSelector, "screen", recording_screen)
    monkeypatch.setattr(train, "_sample_and_score", parity_sample)
    overrides = ["steps=2", "selection.method=speed", "selection.speed.screen_rollouts=3", "tensorboard=false"]
    overrides += ["selection.speed.candidates_factor=2.5", "report=false", "parallel.rollout_shards=2"]
    summary = train.main(_config(tmp_path, *overrides))
    rows = training_rows(tmp_path)
    assert summary["steps"] == 2 and len(calls) == 2 and len(rows) == 2
    screened = 10  # ceil(2.5 x 4) candidates at the first step, then ceil(1.25 x 4 / qualified share)
    for row, (candidates, rewards, positions, correct) in zip(rows, calls):
        assert rewards.shape == correct.shape == (screened, 3)
        lengths = [len(r["prompt"]) for r in pools[0].rows(candidates)]
        np.testing.assert_array_equal(correct, [[(n + j) % 3 == 0 for j in range(3)] for n in lengths])
        expected = [n % 2 == 0 for n in lengths]
        assert (rewards.max(axis=1) > rewards.min(axis=1)).tolist() == expected  # each row is its candidate's
        assert row["prompt_ids"] == candidates[positions].tolist()
        assert row["screen_rollouts"] == screened * 3 and row["rollouts"] == screened * 3 + 4 * 4
        assert row["selection/screen_qualified"] == pytest.approx(np.mean(expected))
        share = np.mean(expected)
        screened = 32 if share == 0 else min(max(4, int(np.ceil(round(5 / share, 9)))), 32)
    logged = [json.loads(line) for line in (tmp_path / "selection_log.jsonl").read_text().splitlines()]
    assert [r["prompt_ids"] for r in logged] == [row["prompt_ids"] for row in rows]  # the trained batch
    assert summary["unique_prompts_used"] == len({i for row in rows for i in row["prompt_ids"]})
    assert train._step_seed(0, 1, 0, screening=True) not in {train._step_seed(0, 1, s) for s in range(4)}
