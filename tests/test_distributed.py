"""Data parallel and devices: the shard plan, the device rule, and real 2-process runs (gloo on CPU).

The multi-process tests launch ``torchrun --nproc_per_node 2`` and ``deepspeed --num_gpus 2`` on a
tiny model and compare against a 1-process run of the same config (same ``parallel.rollout_shards``):
same selections, same parameters within float tolerance, identical selector state on both ranks, and
a SIGKILLed 2-process ZeRO-2 run that resumes to the uninterrupted run's records and weights.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from testing_utils import training_rows

from scalingrl import distributed
from scalingrl.config import load_config, to_dict

DP = [
    "steps=3",
    "batch_size=6",
    "rollout.group_size=4",
    "rollout.max_new_tokens=12",
    "save_every=0",
    "model.tiny.hidden_size=64",
    "model.tiny.num_layers=2",
    "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=128",
    "model.tiny.warmstart_steps=200",
    "model.tiny.warmstart_batch=64",
    "data.synthetic.size=2000",
    "data.synthetic.max_operands=2",
    "data.synthetic.max_digits=1",
    "eval.size=8",
    "eval.samples=2",
    "eval.every=0",
    "progress_bar=false",
    "tensorboard=false",
    "report=false",
    "log_every=1",
    "optim.lr=1e-3",
    "optim.threads=1",
    "grpo.updates_per_batch=2",
    "parallel.rollout_shards=2",
    "optim.zero_stage=2",
]
LAUNCH_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


# ---------------------------------------------------------------- the shard plan (pure functions)


@pytest.mark.parametrize("groups, shards, updates", [(6, 2, 2), (7, 4, 3), (64, 8, 2), (5, 1, 1)])
def test_minibatches_do_not_depend_on_world_size(groups, shards, updates):
    group = 3
    plans = {}
    for size in (1, 2, 4):
        if shards % size:
            continue
        minibatches = [set() for _ in range(updates)]
        owned = []
        for current in range(size):
            for s in distributed.rank_shards(shards, current, size):
                owned.append(s)
                shard_rows = np.concatenate(
                    [np.arange(g * group, (g + 1) * group) for g in distributed.shard_groups(groups, shards)[s]]
                )
                for k, part in enumerate(distributed.minibatch_parts(len(shard_rows), updates)):
                    minibatches[k].update(shard_rows[part].tolist())
        assert sorted(owned) == list(range(shards))  # every shard on exactly one rank
        plans[size] = minibatches
    reference = plans[1]
    assert set().union(*reference) == set(range(groups * group))
    for size, minibatches in plans.items():
        assert minibatches == reference, size
    if shards == 1:  # the historical single-process split: np.array_split over all rows
        assert reference == [set(p.tolist()) for p in np.array_split(np.arange(groups * group), updates)]


def test_shard_count_errors_name_the_key():
    config = distributed.ParallelConfig(rollout_shards=3)
    with pytest.raises(ValueError, match=r"parallel.rollout_shards \(3\) must be a multiple of the world size \(2\)"):
        distributed.resolve_shards(config, 2, 8)
    with pytest.raises(ValueError, match="exceeds batch_size"):
        distributed.resolve_shards(distributed.ParallelConfig(rollout_shards=4), 2, 3)
    with pytest.raises(ValueError, match="rollout_shards must be >= 0"):
        distributed.ParallelConfig(rollout_shards=-1)
    assert distributed.resolve_shards(distributed.ParallelConfig(), 4, 8) == 4


def test_combined_eval_equals_the_whole_set(rng):
    correct = rng.random((23, 3)) < 0.4
    levels = rng.integers(1, 4, size=23)

    def result(index):
        by_level = {
            str(level): float(correct[index][levels[index] == level].mean()) for level in sorted(set(levels[index]))
        }
        return {
            "accuracy": float(correct[index].mean()),
            "pass_at_n": float(correct[index].any(1).mean()),
            "accuracy_by_level": by_level,
            "n_problems": len(index),
            "n_samples": 3,
            "decoding": {"method": "sampling", "temperature": 0.7},
        }

    parts = np.array_split(np.arange(23), 3)
    counts = [{str(level): int((levels[p] == level).sum()) for level in sorted(set(levels[p]))} for p in parts]
    combined = distributed.combine_eval([result(p) for p in parts], counts)
    whole = result(np.arange(23))
    for key in ("accuracy", "pass_at_n", "n_problems"):
        assert combined[key] == pytest.approx(whole[key], rel=1e-12)
    assert combined["pass_at_1"] == combined["accuracy"] and combined["decoding"] == whole["decoding"]
    assert combined["accuracy_by_level"] == pytest.approx(whole["accuracy_by_level"], rel=1e-12)


def test_state_digest_sees_every_value():
    state = {"scores": np.arange(5.0), "nested": {"k": [1, 2]}, "t": torch.ones(2)}
    same = {"t": torch.ones(2), "nested": {"k": [1, 2]}, "scores": np.arange(5.0)}
    assert distributed.state_digest(state) == distributed.state_digest(same)
    changed = {**same, "scores": np.arange(5.0) + np.array([0, 0, 0, 0, 1e-12])}
    assert distributed.state_digest(changed) != distributed.state_digest(state)
    assert distributed.state_digest({**same, "scores": np.arange(5, dtype=np.float32)}) != distributed.state_digest(
        state
    )


# ---------------------------------------------------------------- the device rule


class _OnAnotherDevice:
    """A tensor as a rollout engine on another device would hand it over: usable only after ``.to(device)``."""

    def __init__(self, tensor):
        self._tensor = tensor

    def to(self, device):
        return self._tensor.to(device)


def _strict_device_hook(module, args, kwargs):
    device = next(module.parameters()).device
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, _OnAnotherDevice) or (isinstance(value, torch.Tensor) and value.device != device):
            raise RuntimeError(f"input on another device than the parameters ({device})")


def _config(out_dir, *extra):
    config = load_config(None, DP + list(extra))
    config.output_dir = str(out_dir)
    return config


def test_every_training_input_is_on_the_policy_device(model_cache, tmp_path, monkeypatch):
    from scalingrl import rollout, train

    load_policy, make_engine = train._load_policy, rollout.make_engine
    calls = {"forward": 0}

    def strict_policy(config, log):
        path, model, tokenizer = load_policy(config, log)
        model.register_forward_pre_hook(_strict_device_hook, with_kwargs=True)
        model.register_forward_hook(lambda *args: calls.__setitem__("forward", calls["forward"] + 1))
        return path, model, tokenizer

    class ForeignEngine:
        def __init__(self, engine):
            self.engine = engine

        def __getattr__(self, name):  # sync_weights, sleep, weight_version, ...: the wrapped engine's
            return getattr(self.engine, name)

        def generate(self, *args, **kwargs):
            batch = self.engine.generate(*args, **kwargs)
            return rollout.RolloutBatch(
                *(
                    _OnAnotherDevice(getattr(batch, name))
                    for name in ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "sampling_logprobs")
                ),
                batch.texts,
                _OnAnotherDevice(batch.truncated),
                batch.weight_version,
            )

    monkeypatch.setattr(train, "_load_policy", strict_policy)
    monkeypatch.setattr(rollout, "make_engine", lambda *a, **k: ForeignEngine(make_engine(*a, **k)))
    summary = train.main(
        _config(tmp_path, "steps=2", "grpo.kl_coef=0.05", "optim.zero_stage=0", "parallel.rollout_shards=0")
    )
    assert summary["steps"] == 2 and calls["forward"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for row in rows if row.get("grad_norm") is not None) >= 1  # an update ran through the strict model


def test_rollout_batch_to_moves_every_tensor():
    from scalingrl.rollout import RolloutBatch

    batch = RolloutBatch(*(torch.zeros(2, 3, dtype=torch.float64) for _ in range(5)), ["a", "b"])
    moved = batch.to(torch.float32)  # .to(dtype) exercises the same path as .to(device)
    for name in ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "sampling_logprobs"):
        assert getattr(moved, name).dtype == torch.float32, name
    assert moved.texts == ["a", "b"]


# ---------------------------------------------------------------- real processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child_env():
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV_KEYS}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _launch(launcher: str, config_path: Path, *args: str, port: int | None = None) -> subprocess.Popen:
    port = _free_port() if port is None else port
    if launcher == "torchrun":
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(port),
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus",
            "2",
            "--master_port",
            str(port),
        ]
    command += ["--module" if launcher == "deepspeed" else "-m", "scalingrl.train", "--config", str(config_path), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env(), start_new_session=True
    )


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it: torchrun's ranks run in sessions of their own,
    so killing the launcher's process group alone leaves them running."""
    import psutil

    victims = [psutil.Process(process.pid)]
    try:
        victims += victims[0].children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    for victim in reversed(victims):
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=30)


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        output, _ = process.communicate()
        raise AssertionError(f"launcher timed out:\n{output.decode()[-3000:]}")
    assert process.returncode == 0, output.decode()[-4000:]
    return output.decode()


def _write_config(out_dir: Path, *extra: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir.parent / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(_config(out_dir, *extra))))
    return path


EXACT = (
    "step",
    "prompt_ids",
    "reward_mean",
    "pass_rate",
    "zero_variance_fraction",
    "response_length_mean",
    "unique_prompts_used",
    "selected_levels",
)


def _weights(checkpoint: Path):
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model.safetensors"))


@pytest.fixture(scope="module")
def one_process_run(model_cache, tmp_path_factory):
    from scalingrl.train import main

    out = tmp_path_factory.mktemp("one")
    main(_config(out))
    return out


@pytest.fixture(scope="module")
def two_process_run(one_process_run, tmp_path_factory):
    """``deepspeed --num_gpus 2 -m scalingrl.train`` (CPU accelerator, gloo), ZeRO-2, same config."""
    out = tmp_path_factory.mktemp("two") / "run"
    port = _free_port()
    _finish(_launch("deepspeed", _write_config(out), port=port))
    (out.parent / "master_port").write_text(str(port))
    return out


def test_the_deepspeed_launcher_leaves_no_shared_memory_behind(two_process_run, tmp_path):
    """DeepSpeed's CPU all-reduce creates one buffer per rank in /dev/shm (~58 MB here) under the deepspeed
    launcher (LOCAL_SIZE set) and never unlinks it; each rank unlinks its own once the process group has
    started (``distributed.release_shm_buffer``), so neither a finished run nor a SIGKILLed one leaves any
    for its master port."""

    def left(port) -> list[Path]:
        return list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"))

    assert not left((two_process_run.parent / "master_port").read_text())
    out, port = tmp_path / "killed", _free_port()
    process = _launch("deepspeed", _write_config(out, "save_every=1"), port=port)
    deadline = time.time() + 600
    while not (out / "checkpoints" / "step-000001").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    _kill_tree(process)
    output, _ = process.communicate()
    assert (out / "checkpoints" / "step-000001").exists(), output.decode()[-4000:]
    assert not left(port)


def test_two_processes_match_one_process(one_process_run, two_process_run):
    one, two = one_process_run, two_process_run
    rows_one, rows_two = training_rows(one), training_rows(two)
    assert [{k: r[k] for k in EXACT} for r in rows_two] == [{k: r[k] for k in EXACT} for r in rows_one]
    assert any(r["grad_norm"] is not None for r in rows_one), "no step had a gradient: the test would prove nothing"
    for a, b in zip(rows_one, rows_two):
        assert (a["loss"] is None) == (b["loss"] is None)
        if a["loss"] is not None:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4, abs=1e-6)
    weights_one, weights_two = (
        _weights(one / "checkpoints" / "step-000003"),
        _weights(two / "checkpoints" / "step-000003"),
    )
    assert weights_one.keys() == weights_two.keys()
    for name in weights_one:
        torch.testing.assert_close(weights_two[name], weights_one[name], rtol=1e-4, atol=1e-6, msg=name)
    manifest = json.loads((two / "checkpoints" / "step-000003" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["zero_stage"] == 2
    assert len(manifest["selection_digests"]) == 2 and len(set(manifest["selection_digests"])) == 1
    assert sorted(p.name for p in (two / "checkpoints" / "step-000003" / "rng").iterdir()) == [
        "rank-00000.pt",
        "rank-00001.pt",
    ]
    summary = json.loads((two / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["rollout_shards"] == 2
    # rank 0 alone writes records: one line per step, one selection record per step
    assert [r["step"] for r in rows_two] == [1, 2, 3]
    assert len((two / "selection_log.jsonl").read_text().splitlines()) == 3


def test_sigkilled_two_process_zero2_run_resumes_to_the_same_result(two_process_run, tmp_path):
    out = tmp_path / "run"
    config_path = _write_config(out, "save_every=1", "keep_checkpoints=3")
    process = _launch("torchrun", config_path)
    deadline = time.time() + 600
    # a step takes ~0.1-0.2 s here: poll tightly so that the kill lands in step 2, not after the run
    while not (out / "checkpoints" / "step-000001").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    _kill_tree(process)  # the launcher and both ranks, in the middle of step 2
    output, _ = process.communicate()
    assert (out / "checkpoints" / "step-000001" / "manifest.json").exists(), output.decode()[-4000:]
    assert not (out / "summary.json").exists(), "the run finished before the kill: this test proved nothing"
    _finish(_launch("torchrun", config_path, "--resume"))
    rows, reference = training_rows(out), training_rows(two_process_run)
    assert [{k: r[k] for k in EXACT + ("loss",)} for r in rows] == [
        {k: r[k] for k in EXACT + ("loss",)} for r in reference
    ]
    resumed, uninterrupted = (
        _weights(out / "checkpoints" / "step-000003"),
        _weights(two_process_run / "checkpoints" / "step-000003"),
    )
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=0, msg=name)


def test_other_world_size_stops_before_any_work(two_process_run, tmp_path):
    from scalingrl.train import cli

    run = tmp_path / "run"
    shutil.copytree(two_process_run, run)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(
        SystemExit,
        match=r"written by 2 process\(es\) but this run has 1: under ZeRO-2 its optimizer "
        r"state is partitioned",
    ):
        cli(["--config", "/dev/null", "--output-dir", str(run), "--resume"] + DP)
    assert (run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_resume_in_one_process(one_process_run, tmp_path, stage):
    """ZeRO-1/2 stop and resume (it raised KeyError: 0 in the optimizer load before DeepSpeed's checkpoint API)."""
    from scalingrl.train import main

    main(_config(tmp_path, f"optim.zero_stage={stage}", "steps=1"))
    main(_config(tmp_path, f"optim.zero_stage={stage}"), resume=True)
    rows, reference = (
        training_rows(tmp_path),
        training_rows(one_process_run),
    )  # the reference ran ZeRO-2 uninterrupted
    assert [{k: r[k] for k in EXACT} for r in rows] == [{k: r[k] for k in EXACT} for r in reference]
    exact = stage == 2
    for a, b in zip(rows, reference):
        if b["loss"] is not None:
            assert a["loss"] == (b["loss"] if exact else pytest.approx(b["loss"], rel=1e-4, abs=1e-6))
    resumed, uninterrupted = (
        _weights(tmp_path / "checkpoints" / "step-000003"),
        _weights(one_process_run / "checkpoints" / "step-000003"),
    )
    for name in uninterrupted:
        torch.testing.assert_close(
            resumed[name], uninterrupted[name], rtol=0 if exact else 1e-4, atol=0 if exact else 1e-6, msg=name
        )


@pytest.mark.parametrize("method", ["speed", "des_screened"])
def test_screening_round_matches_one_process(model_cache, tmp_path, method):
    """The screening round is sharded and all-gathered like the step's rollouts: two torchrun ranks screen
    and train exactly the prompts one process with the same shards does (``des_screened`` also draws a
    random order of the candidates on every rank)."""
    from scalingrl.train import main

    chosen = ("selection.method=des", "selection.des.screen=true") if method == "des_screened" else ()
    chosen = chosen or ("selection.method=speed",)
    speed = ("steps=2", *chosen, "selection.speed.screen_rollouts=2", "optim.zero_stage=0")
    main(_config(tmp_path / "one", *speed))
    _finish(_launch("torchrun", _write_config(tmp_path / "two", *speed)))
    rows_one, rows_two = training_rows(tmp_path / "one"), training_rows(tmp_path / "two")
    assert len(rows_one) == 2 and rows_one[0]["screen_rollouts"] == 12 * 2  # 12 candidates x 2 at the first step
    keys = (*EXACT, "screen_rollouts", "rollouts", "selection/screen_qualified")
    assert [{k: r[k] for k in keys} for r in rows_two] == [{k: r[k] for k in keys} for r in rows_one]


def test_release_shm_buffer_unlinks_only_this_ranks_buffer(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29512")
    monkeypatch.setenv("RANK", "1")
    uid = os.getuid()
    names = [
        f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_{port}_{r}" for port, r in ((29512, 0), (29512, 1), (29513, 1))
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert distributed.release_shm_buffer(str(tmp_path)) == [str(tmp_path / names[1])]
    assert sorted(p.name for p in tmp_path.iterdir()) == [names[0], names[2]]
    assert distributed.release_shm_buffer(str(tmp_path)) == []  # already gone: nothing to do
    monkeypatch.delenv("MASTER_PORT")
    assert distributed.release_shm_buffer(str(tmp_path)) == []
