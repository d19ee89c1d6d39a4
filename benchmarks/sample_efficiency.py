"""Sample efficiency of every selection method on the real GRPO loop, side by side, several seeds.

One command per setting trains every method (and the DES ablations) with identical hyper-parameters
and step budget, one ``python -m scalingrl.train`` process per (method, seed), at most ``--parallel``
at a time, and writes ``benchmarks/results/sample_efficiency.json`` (``--json``; the ``smoke`` driver
check writes ``<out>/sample_efficiency.json``):

- top level: ``pool_size``, ``setting``, ``steps``, ``common_overrides``; per setting under ``settings``, the
  same and ``eval`` (held-out problems, samples each, decoding) and ``goals`` (whether issue 8's goals apply);
- ``methods.<name>``: ``final_accuracy_mean``, ``final_accuracy_std``, ``gain_mean`` (final - initial),
  ``gain_std``, ``unique_prompts_mean``, ``pool_share_used_mean``, ``zero_variance_share_mean`` (share
  of rollouts in all-equal-reward groups, screening rounds included), ``rollouts_mean``,
  ``gain_pool_mix_mean`` (settings with ``level_weights``), ``selection_overhead_ms_mean`` (the selector's
  select + update per step), ``rollouts_per_informative_group`` (every seed's rollouts, screening included,
  over their trained groups whose rewards differed; null when none had one), ``seeds`` (finished seeds),
  ``overrides``, and ``runs.<seed>``: the held-out accuracy curve against steps, rollouts and wall-clock
  (``curve``: list of {step, rollouts, wall_clock_s, accuracy}), ``informative_groups``, ``eval``
  ({problems, samples, decoding}), ``prompts_per_step`` and ``group_size``.

Resumable: a run whose folder holds ``summary.json`` is finished and skipped; one with checkpoints
continues with ``--resume``. ``--collect`` only rebuilds the JSON from the finished runs, those under
``--out`` merged with the ones the JSON already records (a run on disk replaces its record; a recorded
run with no folder here is kept and named). Each training
runs in its own session (its process group id is the pid in its folder's ``run.pid``): when one ends
(finished, failed or killed for memory) the driver ends what is left of its group (a vLLM engine would
otherwise outlive it). Ctrl-C on the driver is passed on to the trainings it runs. Killing the driver
(``kill PID``, or its process group) leaves the trainings running, and the next driver waits for them;
to stop one, ``kill -- -$(cat RUN_FOLDER/run.pid)``.

    nohup setsid nice -n 10 python benchmarks/sample_efficiency.py --setting quickstart \\
        --out /work/se-runs --seeds 0 1 2 --parallel 2 > /work/se-runs/driver.log 2>&1 &
    python benchmarks/sample_efficiency.py --setting quickstart --out /work/se-runs --collect
    python benchmarks/sample_efficiency_report.py   # plots + benchmarks/RESULTS.md from the JSON

Settings: ``quickstart`` (the 220K synthetic pool, budget in docs/des_evidence.md), ``skewed_pool`` (the
same budget, model and held-out set on a pool 80% of which the initial model has mastered or cannot
solve: 71% of uniform's rollouts were in zero-variance groups over 3 seeds, vs 50% on the quickstart
pool, closer to the paper's setting), ``quickstart_g4`` and ``quickstart_g2`` (the quickstart's 512 rollouts
per step as 128 prompts x 4 and 256 x 2: breadth at equal rollouts), ``full_pass`` (uniform
for one pass over the pool: the paper's full-data baseline) and ``smollm2_gsm8k`` (issue 8's setting (c):
SmolLM2-135M-Instruct on GSM8K with vLLM rollouts; run the driver with the vLLM venv's python and
``--model FOLDER``, one run at a time on a 24 GiB machine: two trainers (~7 GB each) and their vLLM
engines (~4 GB each) were OOM-killed there). Methods are the registered
selectors plus ``des_<variant>`` ablations; ``uniform_lr<value>`` entries check uniform's learning rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sample_efficiency.json"

#: Per method: the extra overrides that define it (identical everything else).
METHODS = {
    "uniform": ["selection.method=uniform"],
    "des": ["selection.method=des"],
    "des_calibrated": ["selection.method=des", "selection.des.calibrate_labels=true"],
    "des_stratified": ["selection.method=des", "selection.des.stratify_labels=true"],
    # Label strata without replay: every prompt of every batch is new (explore share pinned at 1), so the
    # only selection left is which labels get the batch. Against des_stratified it isolates replay.
    "des_stratified_no_replay": [
        "selection.method=des",
        "selection.des.stratify_labels=true",
        "selection.curriculum.initial_explore=1.0",
        "selection.curriculum.min_explore=1.0",
        "selection.curriculum.max_explore=1.0",
    ],
    "mopps": ["selection.method=mopps"],
    "greso": ["selection.method=greso"],
    "speed": ["selection.method=speed"],
    # DES's candidates through SPEED's screen (the same candidate count and samples as ``speed``): against
    # ``speed`` it isolates what DES's ranking adds to screening, against ``des`` what screening adds to DES.
    "des_screened": ["selection.method=des", "selection.des.screen=true"],
    # DES among new prompts only (explore share pinned at 1), ranked by their label's measured pass rate
    # (docs/des_evidence.md section 13); ``des_fresh_lr2e-4`` is the same at lr 2e-4.
    "des_fresh": [
        "selection.method=des",
        "selection.des.calibrate_labels=true",
        "selection.curriculum.initial_explore=1.0",
        "selection.curriculum.min_explore=1.0",
        "selection.curriculum.max_explore=1.0",
    ],
    "dapo": ["selection.method=dapo"],
    "adarft": ["selection.method=adarft"],
    "random_subset": ["selection.method=random_subset"],
    "des_no_difficulty": ["selection.method=des", "selection.des.weight_difficulty=0"],
    "des_no_cot": ["selection.method=des", "selection.des.weight_cot=0"],
    "des_no_adaptability": ["selection.method=des", "selection.des.weight_adaptability=0"],
    "des_fixed_pool": [
        "selection.method=des",
        "selection.curriculum.min_pool=1024",
        "selection.curriculum.max_pool=1024",
    ],
}
#: DES at another learning rate, to pair with the uniform check at the same rate (identical
#: hyper-parameters to a tuned baseline, not only to the default one); run where a setting lists it.
AT_OTHER_LR = {
    "des_lr2e-4": ["selection.method=des", "optim.lr=2.0e-4"],
    "des_lr4e-4": ["selection.method=des", "optim.lr=4.0e-4"],  # pairs with the uniform_lr4e-4 check
    # DES choosing only among new prompts (explore share pinned at 1), ranked by their label's measured pass
    # rate: DES's level choice without its choice of replays by record (docs/des_evidence.md section 13).
    "des_fresh_lr2e-4": [*METHODS["des_fresh"], "optim.lr=2.0e-4"],
    # The strongest other methods at the rate that turned out best for uniform on the quickstart (section 12).
    "speed_lr2e-4": ["selection.method=speed", "optim.lr=2.0e-4"],
    "mopps_lr2e-4": ["selection.method=mopps", "optim.lr=2.0e-4"],
    # DES's strongest variant on the quickstart (through SPEED's screen) at that rate, against speed_lr2e-4.
    "des_screened_lr2e-4": ["selection.method=des", "selection.des.screen=true", "optim.lr=2.0e-4"],
    # DES with replay capped: a prompt trained twice leaves play for good (docs/des_evidence.md section 13).
    "des_max_visits2_lr2e-4": ["selection.method=des", "selection.curriculum.max_visits=2", "optim.lr=2.0e-4"],
    # DES with flatter sampler weights (weight = floor + DES^1 instead of DES^4): less concentrated batches.
    "des_sharpness1_lr2e-4": ["selection.method=des", "selection.des.sharpness=1", "optim.lr=2.0e-4"],
}
#: Checks of the uniform baseline, seed 0 by default: its learning rate (is 1e-4 its best in this budget?),
#: half the batch (does the number of informative groups per step limit learning at all?) and twice the
#: batch (how much would 2x the informative groups per optimizer step give: the most any selection could
#: add at equal steps; run it on every seed with ``--methods uniform_b128``).
LR_CHECK = {
    "uniform_lr5e-5": ["selection.method=uniform", "optim.lr=5.0e-5"],
    "uniform_lr2e-4": ["selection.method=uniform", "optim.lr=2.0e-4"],
    "uniform_lr4e-4": ["selection.method=uniform", "optim.lr=4.0e-4"],
    "uniform_b32": ["selection.method=uniform", "batch_size=32"],
    "uniform_b128": ["selection.method=uniform", "batch_size=128"],
    # Uniform sampling of new prompts from a pool with DES's level mix (DES at 2e-4, mean over its 3 seeds, in %):
    # DES's concentration on levels without its replay or per-prompt choice (docs/des_evidence.md section 13).
    "uniform_des_levels_lr2e-4": [
        "selection.method=uniform",
        "optim.lr=2.0e-4",
        "data.synthetic.level_weights=[0,1,3,8,10,10,22,22,11,10,2,0]",
    ],
}

#: The skewed pool: 80% of the prompts from the levels the initial model has mastered or cannot solve
#: (held-out pass@1 >= 0.9 or <= 0.1: levels 0, 10, 11; docs/des_evidence.md section 1), 20% spread evenly
#: over the other nine. The held-out set and the initial model are the quickstart's.
SKEWED_LEVEL_WEIGHTS = [12, 1, 1, 1, 1, 1, 1, 1, 1, 1, 12, 12]

SETTINGS = {
    # 100 steps x 64 prompts x 8 rollouts (docs/des_evidence.md says why not 350); lr decays to 10% over the
    # run's 2 x 100 optimizer steps, the preset's schedule shape.
    "quickstart": {
        "steps": 100,
        "overrides": ["eval.every=25", "optim.decay_steps=200"],
        "checks": ["uniform_b32", "uniform_lr5e-5", "uniform_lr2e-4", "uniform_b128"],
    },
    # The quickstart's budget on a pool where most groups are zero-variance for uniform sampling (the regime
    # the paper describes); uniform's learning rate is checked again here (the fairness rule of issue 8).
    "skewed_pool": {
        "steps": 100,
        "overrides": [
            "eval.every=25",
            "optim.decay_steps=200",
            f"data.synthetic.level_weights=[{','.join(map(str, SKEWED_LEVEL_WEIGHTS))}]",
        ],
        "methods": [
            *("uniform", "des", "des_lr2e-4", "mopps", "greso", "des_stratified", "random_subset", "dapo", "speed"),
            "des_screened",
            *("des_no_difficulty", "des_no_adaptability", "des_no_cot", "des_fixed_pool"),  # ablations
        ],
        "checks": ["uniform_lr5e-5", "uniform_lr2e-4", "uniform_lr4e-4"],
    },
    # The quickstart's rollouts per step (512) as 128 prompts x G = 4 instead of 64 x 8: twice the distinct
    # prompts per optimizer step at equal rollouts and steps (docs/des_evidence.md section 12 says why). Groups
    # of 4 are zero-variance more often (predicted for uniform from the initial model's per-level pass rates:
    # 0.43 of groups, against 0.25 at G = 8), the regime where selection should pay. Uniform's learning rate is
    # checked again here (issue 8's fairness rule).
    "quickstart_g4": {
        "steps": 100,
        "overrides": ["eval.every=25", "optim.decay_steps=200", "batch_size=128", "rollout.group_size=4"],
        # des_lr2e-4: DES at the rate that turned out best for uniform here (paired with uniform_lr2e-4, which
        # then ran on every seed: ``--methods uniform_lr2e-4 --seeds 1 2``); the strongest baselines at that rate too.
        "methods": ["uniform", "des", "des_lr2e-4", "mopps", "speed", "mopps_lr2e-4", "speed_lr2e-4"],
        "checks": ["uniform_lr5e-5", "uniform_lr2e-4"],
    },
    # The same rollouts as 256 prompts x G = 2: how far breadth at equal rollouts goes, and whether selection pays
    # when most all-equal groups come from sampling noise (a pass rate of 1/2 gives an all-equal pair half the
    # time) rather than from the prompts in play (docs/des_evidence.md section 12).
    "quickstart_g2": {
        "steps": 100,
        "overrides": ["eval.every=25", "optim.decay_steps=200", "batch_size=256", "rollout.group_size=2"],
        "methods": ["uniform", "des"],
    },
    # Driver check only (2 steps, tiny batch and eval): not evidence.
    "smoke": {
        "steps": 2,
        "evidence": False,  # default --json: <out>/sample_efficiency.json, not the committed results
        "overrides": ["eval.every=1", "eval.size=8", "batch_size=4", "rollout.group_size=2"],
    },
    # One pass over the 220K pool at 64 prompts per step (3438 steps): the full-data reference.
    "full_pass": {
        "steps": 3438,
        "overrides": ["eval.every=250", "optim.decay_steps=6876"],
        "methods": ["uniform"],
        "goals": False,  # the quickstart's reference, not a comparison of methods
    },
    # The quickstart for a tenth of the one-pass run's steps (344 of 3,438; 176,128 rollouts, a tenth of its
    # 1,760,256): the budget of issue 8's one-pass goal, run directly rather than read off 100-step curves.
    # Learning rate decays over the run's own 2 x 344 optimizer steps, the quickstart's schedule shape.
    "tenth_pass": {
        "steps": 344,
        "overrides": ["eval.every=86", "optim.decay_steps=688"],
        "methods": ["uniform", "des"],
        "goals": False,  # checked in the quickstart's goals, against the full_pass reference
    },
    # Setting (c): the real model on real data, SmolLM2-135M-Instruct on GSM8K with vLLM rollouts (the
    # ``smollm2_gsm8k`` preset: 4 prompts x G=8, T=0.7, 256 new tokens, lr 1e-5), 8 steps as in the preset.
    # Held-out: 100 GSM8K test problems, greedy (less noise than one T=0.7 sample). The screening methods get
    # at most 4 x B candidates (not 8 x B): the preset's own run had 2 of 32 groups with mixed rewards at G=8
    # (docs/vllm.md), so few candidates qualify in 4 samples and the cap binds; at 8 x B a step would roll out
    # 32 x 4 + 32 = 160 samples, 5x uniform's 32, past a session's budget (4 x B: 96, 3x). Needs --model.
    "smollm2_gsm8k": {
        "steps": 8,
        "config": "smollm2_gsm8k",
        "model": True,
        "goals": False,  # one seed, 8 steps: the informative share is the measure (issue 8), not the gain
        "overrides": [
            "eval.size=100",
            "eval.batch_size=100",
            "eval.temperature=0",
            "save_every=2",
            "selection.speed.max_candidates_factor=4",
        ],
        "methods": ["uniform", "des_screened", "des", "speed"],
    },
}
#: Every run the driver knows, by name: its extra overrides.
RUNS = {**METHODS, **AT_OTHER_LR, **LR_CHECK}
POLL_S = 5.0  # seconds between checks on running trainings
REAP_GRACE_S = 15.0  # seconds between SIGTERM and SIGKILL for what an ended training left behind
FIXED = ["optim.threads=1", "report=false", "tensorboard=false", "progress_bar=false", "save_every=25"]


def common_overrides(setting: str) -> list[str]:
    spec = SETTINGS[setting]
    own = {override.split("=", 1)[0] for override in spec["overrides"]}  # the setting's own values win
    return [f"steps={spec['steps']}", *(o for o in FIXED if o.split("=", 1)[0] not in own), *spec["overrides"]]


def run_dir(out: pathlib.Path, setting: str, method: str, seed: int) -> pathlib.Path:
    return out / setting / method / f"seed{seed}"


def code_version(folder: pathlib.Path) -> str | None:
    """The commits a run was launched on, oldest first, joined by " then " (a run resumed on other code
    lists both); None without ``code_version.txt``."""
    try:
        lines = (folder / "code_version.txt").read_text().split("\n")
    except FileNotFoundError:
        return None
    return " then ".join(dict.fromkeys(line.strip() for line in lines if line.strip())) or None


def launch(out: pathlib.Path, setting: str, method: str, seed: int, overrides: list[str]) -> subprocess.Popen:
    folder = run_dir(out, setting, method, seed)
    resume = any((folder / "checkpoints").glob("step-*"))
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "scalingrl.train",
        *(["--config", SETTINGS[setting]["config"]] if "config" in SETTINGS[setting] else []),
        "--output-dir",
        str(folder),
        *(["--resume"] if resume else []),
        *common_overrides(setting),
        *overrides,
        f"seed={seed}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "python", "csrc"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    with open(folder / "code_version.txt", "a") as versions:  # a line per launch: a resume may change code
        versions.write(f"{commit}{' (uncommitted changes)' if dirty.strip() else ''}\n")
    return start_run(command, folder, env)


def _default_sigint() -> None:
    """In a training's process, before it runs: SIGINT back to its default, so that the SIGINT the driver
    forwards on Ctrl-C (or ``kill -INT DRIVER``) ends the training and what it starts even when the driver
    itself was started with SIGINT ignored, as a shell starts background jobs (``cmd &`` in a script)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(command: list[str], folder: pathlib.Path, env: dict[str, str]) -> subprocess.Popen:
    """Start one training in its own session, so that it and everything it starts (a vLLM engine's
    processes) form one process group, which ``reap_group`` ends when the training has ended. Its
    output is appended to ``folder/train.log`` and its pid written to ``folder/run.pid``."""
    with open(folder / "train.log", "a") as log:  # the child keeps its own copy of the descriptor
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    (folder / "run.pid").write_text(f"{process.pid}\n")
    return process


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) pids in process group ``pgid``, from /proc; [] where /proc is not Linux's."""
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _own_group(process: Any) -> bool:
    """Whether ``process`` leads a process group of its own that the driver may end: one ``start_run``
    started, or an adopted run that ``start_run`` started for an earlier driver. Never another group."""
    return isinstance(process, subprocess.Popen) or getattr(process, "own_group", False)


def reap_group(pgid: int, grace_s: float | None = None) -> list[int]:
    """After a training that ``start_run`` started has ended: end what is left of its process group (a
    training killed for memory leaves its vLLM engine behind, holding GBs). SIGTERM first, so that
    multiprocessing's resource tracker (it ignores SIGTERM) can unlink the engine's shared-memory segments
    once the engine has gone; SIGKILL for whatever is still there after ``grace_s`` seconds (default
    ``REAP_GRACE_S``). Returns the pids that were left."""
    grace_s = REAP_GRACE_S if grace_s is None else grace_s
    left = group_members(pgid)
    for sig in (signal.SIGTERM, signal.SIGKILL) if left else ():
        if sig == signal.SIGKILL and not group_members(pgid):
            break  # all ended after SIGTERM
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):  # they ended meanwhile / not ours
            break
        deadline = time.time() + grace_s
        while sig == signal.SIGTERM and group_members(pgid) and time.time() < deadline:
            time.sleep(0.2)
    return left


def live_pid(folder: pathlib.Path) -> int | None:
    """The pid of a training process still running in ``folder`` (started by an earlier driver), else None."""
    try:
        pid = int((folder / "run.pid").read_text())
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(folder) in cmdline else None


def queue(setting: str, methods: list[str], seeds: list[int], lr_check: bool) -> list[tuple[str, int, list[str]]]:
    """(method, seed, overrides) in seed-major order, so partial results cover every method; with
    ``lr_check``, the setting's uniform checks on the first seed: the batch check third, the rest after
    the first seed's methods."""
    jobs = [(m, seeds[0], RUNS[m]) for m in methods]
    if lr_check:
        checks = SETTINGS[setting].get("checks", [])
        if "uniform_b32" in checks:
            # Right after the first pair: it decides whether per-step signal limits learning at all.
            jobs.insert(min(2, len(jobs)), ("uniform_b32", seeds[0], LR_CHECK["uniform_b32"]))
        jobs += [(m, seeds[0], LR_CHECK[m]) for m in checks if m != "uniform_b32"]
    return jobs + [(m, s, RUNS[m]) for s in seeds[1:] for m in methods]


def run_all(out: pathlib.Path, setting: str, jobs, parallel: int, json_path: pathlib.Path) -> None:
    pending = [job for job in jobs if not (run_dir(out, setting, job[0], job[1]) / "summary.json").exists()]
    print(f"{len(jobs) - len(pending)} of {len(jobs)} runs already finished; {len(pending)} to go", flush=True)
    running: list[tuple[Any, str, int, float]] = []
    for job in list(pending):  # runs an earlier driver started and that still train: wait for them
        pid = live_pid(run_dir(out, setting, job[0], job[1]))
        if pid is not None:
            pending.remove(job)
            running.append((_Adopted(pid, run_dir(out, setting, job[0], job[1])), job[0], job[1], time.time()))
            print(f"{time.strftime('%H:%M:%S')} waiting for running {job[0]} seed {job[1]} (pid {pid})", flush=True)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                method, seed, overrides = pending.pop(0)
                print(f"{time.strftime('%H:%M:%S')} start {method} seed {seed}", flush=True)
                running.append((launch(out, setting, method, seed, overrides), method, seed, time.time()))
            time.sleep(POLL_S)
            for item in list(running):
                process, method, seed, started = item
                if process.poll() is None:
                    continue
                running.remove(item)
                status = "done" if process.returncode == 0 else f"FAILED rc={process.returncode} (see train.log)"
                print(
                    f"{time.strftime('%H:%M:%S')} {status}: {method} seed {seed} in {time.time() - started:.0f}s",
                    flush=True,
                )
                if _own_group(process):
                    left = reap_group(process.pid)
                    if left:
                        print(f"  killed {len(left)} process(es) it left behind (pids {left})", flush=True)
                collect(out, setting, json_path)
    except KeyboardInterrupt:
        # Ctrl-C reaches only the driver's process group; the trainings run in their own sessions.
        for process, *_ in running:
            if _own_group(process):
                try:
                    os.killpg(process.pid, signal.SIGINT)
                except (ProcessLookupError, PermissionError):
                    pass
        raise


class _Adopted:
    """A training process started by an earlier driver: finished once its pid is gone."""

    def __init__(self, pid: int, folder: pathlib.Path) -> None:
        self.pid, self.folder, self.returncode = pid, folder, None
        try:  # started by ``start_run`` (a session leader): its group is its own, to reap when it ends
            self.own_group = os.getpgid(pid) == pid
        except ProcessLookupError:
            self.own_group = False

    def poll(self):
        if live_pid(self.folder) == self.pid:
            return None
        self.returncode = 0 if (self.folder / "summary.json").exists() else 1
        return self.returncode


def read_run(folder: pathlib.Path) -> dict | None:
    """Summary, curves and per-step aggregates of one finished run; None if unfinished."""
    from scalingrl.runlog.metrics import read_metrics

    summary_path = folder / "summary.json"
    if not summary_path.exists():
        return None
    summary = json.loads(summary_path.read_text())
    rows = read_metrics(folder / "metrics.jsonl")
    config = (folder / "config.yaml").read_text()
    import yaml

    cfg = yaml.safe_load(config)
    per_step = cfg["batch_size"] * cfg["rollout"]["group_size"]
    train_rows = {r["step"]: r for r in rows if "time_step_s" in r}
    elapsed, clock, spent, rollouts = 0.0, {0: 0.0}, 0, {0: 0}
    for step in sorted(train_rows):
        elapsed += train_rows[step]["time_step_s"]
        clock[step] = elapsed
        spent += train_rows[step].get("rollouts", per_step)  # screening rounds (speed) roll out more
        rollouts[step] = spent
    curve = [
        {
            "step": r["step"],
            "rollouts": rollouts.get(r["step"], r["step"] * per_step),
            "wall_clock_s": clock.get(r["step"]),
            "accuracy": r["eval_accuracy"],
        }
        for r in rows
        if r.get("eval_accuracy") is not None
    ]
    curve = list({point["step"]: point for point in curve}.values())  # last value per step (resumed runs)
    curve.sort(key=lambda point: point["step"])
    zero = [zero_variance_share(r) for r in train_rows.values()]
    # Per-step signal and policy movement (means over the training steps), for the mechanism table.
    informative = [
        (1 - r["zero_variance_fraction"]) * len(r["prompt_ids"]) for r in train_rows.values() if r.get("prompt_ids")
    ]
    final_eval = summary["final_eval"]

    def step_mean(key: str) -> float | None:
        values = [r[key] for r in train_rows.values() if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    # The selector's own select + update time (not the prompt rows' generation and formatting).
    overhead = [
        r["selection/selection_ms"] + r["selection/update_ms"]
        for r in train_rows.values()
        if r.get("selection/selection_ms") is not None and r.get("selection/update_ms") is not None
    ]
    return {
        "initial_accuracy": summary["initial_eval_accuracy"],
        "final_accuracy": summary["final_eval_accuracy"],
        "gain": summary["final_eval_accuracy"] - summary["initial_eval_accuracy"],
        "unique_prompts": summary["unique_prompts_used"],
        "pool_size": summary["pool_size"],
        "zero_variance_share": float(np.mean(zero)) if zero else None,
        "informative_groups_per_step": float(np.mean(informative)) if informative else None,
        # Trained groups whose rewards differed, over the run (the collector divides rollouts by it).
        "informative_groups": int(round(sum(informative))) if informative else None,
        "train_reward": step_mean("reward_mean"),
        "grad_norm": step_mean("grad_norm"),
        "approx_kl_old": step_mean("approx_kl_old"),
        "entropy": step_mean("entropy_mean"),
        "selection_overhead_ms": float(np.mean(overhead)) if overhead else None,
        "train_time_s": elapsed,
        "rollouts": spent,
        "wall_clock_s": summary["wall_clock_s"],
        "steps": summary["steps"],
        "curve": curve,
        "code_version": code_version(folder),
        "accuracy_by_level_initial": summary["initial_eval"].get("accuracy_by_level"),
        "accuracy_by_level_final": final_eval.get("accuracy_by_level"),
        "selected_levels": _level_counts(train_rows.values()),
        "gain_pool_mix": _pool_mix_gain(summary, cfg),
        "eval": {
            "problems": final_eval.get("n_problems"),
            "samples": final_eval.get("n_samples"),
            "decoding": (final_eval.get("decoding") or {}).get("method"),
        }
        if final_eval.get("n_problems")
        else None,
        "prompts_per_step": cfg["batch_size"],
        "group_size": cfg["rollout"]["group_size"],
    }


def zero_variance_share(row: dict) -> float:
    """Share of one step's rollouts in all-equal-reward groups, a screening round's included.

    ``row``: a training step of ``metrics.jsonl``. Without screening it is ``zero_variance_fraction``; with
    it, the screened candidates whose samples were all equal (``1 - selection/screen_qualified`` of them)
    add their ``screen_rollouts``: (zv x group rollouts + (1 - q) x screen rollouts) / all rollouts.
    """
    screened = row.get("screen_rollouts") or 0
    if not screened:
        return row["zero_variance_fraction"]
    group_rollouts = row["rollouts"] - screened
    wasted = row["zero_variance_fraction"] * group_rollouts + (1 - row["selection/screen_qualified"]) * screened
    return wasted / row["rollouts"]


def pool_mix_accuracy(by_level: dict[str, float], level_weights: list[int]) -> float:
    """Held-out accuracy re-weighted to the training pool's level mix.

    ``by_level``: held-out pass@1 per level (keys "0".."L-1", the eval's ``accuracy_by_level``); the held-out
    set has an equal mix of levels, so ``sum_l w_l * acc_l / sum_l w_l`` is an unbiased estimate of the
    pass@1 on a held-out set drawn like the pool (``data.synthetic.level_weights``), with a larger sampling
    error where the weights are uneven. Raises ValueError if a weighted level has no accuracy.
    """
    if any(weight < 0 for weight in level_weights) or sum(level_weights) <= 0:
        raise ValueError(f"level_weights={level_weights} must be >= 0 with a positive sum")
    missing = [level for level, weight in enumerate(level_weights) if weight and str(level) not in by_level]
    if missing:
        raise ValueError(f"accuracy_by_level has no entry for level(s) {missing} of level_weights={level_weights}")
    total = sum(level_weights)
    return sum(weight * by_level[str(level)] for level, weight in enumerate(level_weights) if weight) / total


def _pool_mix_gain(summary: dict, cfg: dict) -> float | None:
    """Final minus initial :func:`pool_mix_accuracy`; None without ``data.synthetic.level_weights``."""
    weights = ((cfg.get("data") or {}).get("synthetic") or {}).get("level_weights") or []
    initial, final = summary["initial_eval"].get("accuracy_by_level"), summary["final_eval"].get("accuracy_by_level")
    if not weights or not initial or not final:
        return None
    return pool_mix_accuracy(final, weights) - pool_mix_accuracy(initial, weights)


def _level_counts(rows) -> dict[str, int] | None:
    """How many selected prompts per difficulty level over the run (None without levels)."""
    counts: dict[str, int] = {}
    for row in rows:
        for level in row.get("selected_levels") or []:
            if level is not None:
                counts[str(int(level))] = counts.get(str(int(level)), 0) + 1
    return dict(sorted(counts.items(), key=lambda item: int(item[0]))) or None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def collect(out: pathlib.Path, setting: str, json_path: pathlib.Path) -> dict:
    """Rebuild the setting's entry in the JSON from its finished runs (other settings' entries kept).

    The runs are those under ``out/setting`` merged with the ones the JSON already records for this
    setting: a (method, seed) found on disk replaces the recorded one, and a recorded run with no finished
    folder under ``out`` (run on another machine, or its folder since deleted) is kept, and named on stdout,
    so collecting a new run never drops older results. The aggregates are recomputed over the merged runs;
    a warning names a method whose merged runs differ in steps or batch shape. To drop a recorded run,
    delete it from ``settings.<setting>.methods.<method>.runs`` in the JSON and collect again.
    """
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}
    recorded = previous.get("settings", {}).get(setting, {}).get("methods", {})
    runs_by_method: dict[str, dict[str, dict]] = {name: dict(entry["runs"]) for name, entry in recorded.items()}
    found = set()
    for method_dir in sorted(p for p in (out / setting).glob("*") if p.is_dir()):
        for seed_dir in sorted(method_dir.glob("seed*")):
            result = read_run(seed_dir)
            if result is not None:
                runs_by_method.setdefault(method_dir.name, {})[seed_dir.name.removeprefix("seed")] = result
                found.add((method_dir.name, seed_dir.name.removeprefix("seed")))
    kept = {name: [seed for seed in runs if (name, seed) not in found] for name, runs in runs_by_method.items()}
    kept = {name: seeds for name, seeds in kept.items() if seeds}
    if kept:
        listed = ", ".join(f"{name} (seeds {' '.join(seeds)})" for name, seeds in kept.items())
        count = sum(map(len, kept.values()))
        print(f"{setting}: kept {count} runs recorded in {json_path}, not finished under {out}: {listed}")
    methods, pool_size = {}, None
    for method in sorted(runs_by_method):
        runs = dict(sorted(runs_by_method[method].items(), key=lambda item: int(item[0])))
        if not runs:
            continue
        pool_size = next(iter(runs.values()))["pool_size"]
        shapes = {(r.get("steps"), r.get("prompts_per_step"), r.get("group_size")) for r in runs.values()}
        if len(shapes) > 1:
            print(
                f"warning: {setting}/{method}'s runs differ in (steps, prompts per step, G): {sorted(shapes, key=str)}"
            )
        overrides = RUNS.get(method, recorded.get(method, {}).get("overrides"))  # a method since dropped keeps its own
        entry = {"seeds": sorted(int(s) for s in runs), "overrides": overrides}
        for key, name in (
            ("final_accuracy", "final_accuracy"),
            ("gain", "gain"),
            ("gain_pool_mix", "gain_pool_mix"),
            ("initial_accuracy", "initial_accuracy"),
            ("unique_prompts", "unique_prompts"),
            ("zero_variance_share", "zero_variance_share"),
            ("selection_overhead_ms", "selection_overhead_ms"),
            ("train_time_s", "train_time_s"),
            ("rollouts", "rollouts"),
            ("informative_groups_per_step", "informative_groups_per_step"),
            ("train_reward", "train_reward"),
            ("grad_norm", "grad_norm"),
            ("approx_kl_old", "approx_kl_old"),
            ("entropy", "entropy"),
        ):
            mean, std = _mean_std([r.get(key) for r in runs.values()])
            entry[f"{name}_mean"], entry[f"{name}_std"] = mean, std
        entry["pool_share_used_mean"] = entry["unique_prompts_mean"] / pool_size if pool_size else None
        # Pooled over seeds (a seed without an informative group counts, rather than dropping out of a mean);
        # None when no seed had one (the report says "none"), or when runs lack the per-step prompt ids.
        counted = [r for r in runs.values() if r.get("informative_groups") is not None]
        informative = sum(r["informative_groups"] for r in counted)
        entry["rollouts_per_informative_group"] = (
            sum(r["rollouts"] for r in counted) / informative if counted and informative else None
        )
        entry["runs"] = runs
        methods[method] = entry
    settings = previous.get("settings", {})
    described = {
        json.dumps(run.get("eval"), sort_keys=True): f"{method}/seed{seed}"
        for method, entry in methods.items()
        for seed, run in entry["runs"].items()
    }
    if len(described) > 1:  # runs of one setting evaluated on different held-out sets: say so, describe none
        print(f"warning: {setting}'s runs differ in their held-out evaluation ({described}); eval recorded as null")
    settings[setting] = {
        "pool_size": pool_size,
        "eval": json.loads(next(iter(described))) if len(described) == 1 else None,  # problems, samples, decoding
        "goals": SETTINGS[setting].get("goals", True),
        "steps": SETTINGS[setting]["steps"],
        "common_overrides": common_overrides(setting),
        "methods": methods,
    }
    # The quickstart setting is the headline: its methods and pool size sit at the top level.
    head = settings.get("quickstart", settings[setting])
    document = {
        "setting": "quickstart" if "quickstart" in settings else setting,
        "pool_size": head["pool_size"],
        "steps": head["steps"],
        "common_overrides": head["common_overrides"],
        "methods": head["methods"],
        "settings": settings,
        "command": "python benchmarks/sample_efficiency.py --setting <name> --out <folder>",
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    partial = json_path.with_name(json_path.name + ".partial")  # two drivers may collect at once: never a
    partial.write_text(json.dumps(document, indent=1))  # half-written file for the other to read
    os.replace(partial, json_path)
    print_table(methods)
    return document


def print_table(methods: dict) -> None:
    uniform_gain = methods.get("uniform", {}).get("gain_mean")
    print(
        f"{'method':22s} {'seeds':>5s} {'final':>13s} {'gain':>13s} {'x uniform':>9s} "
        f"{'prompts':>8s} {'zero-var':>8s} {'sel ms':>7s}"
    )
    for name, m in methods.items():
        ratio = m["gain_mean"] / uniform_gain if uniform_gain else float("nan")
        print(
            f"{name:22s} {len(m['seeds']):5d} {m['final_accuracy_mean']:.3f}±{m['final_accuracy_std']:.3f} "
            f"{m['gain_mean']:+.3f}±{m['gain_std']:.3f} {ratio:9.2f} {m['unique_prompts_mean']:8.0f} "
            f"{m['zero_variance_share_mean']:8.2f} {m['selection_overhead_ms_mean'] or 0:7.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="quickstart")
    parser.add_argument("--out", required=True, help="run folder root (outside the repository)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method of the setting")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (1 or 2 on a 2-core machine)")
    parser.add_argument("--no-lr-check", action="store_true", help="skip uniform's learning-rate check runs")
    parser.add_argument(
        "--json", default=None, help=f"where the JSON goes (default {RESULTS.relative_to(ROOT)}; smoke: <out>/...)"
    )
    parser.add_argument("--collect", action="store_true", help="only rebuild the JSON from finished runs")
    parser.add_argument("--model", default=None, help="model folder, for settings on a real model (smollm2_gsm8k)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    if out == ROOT or ROOT in out.parents:
        raise SystemExit(f"--out {out} is inside the repository; use a folder outside it (e.g. /work/se-runs)")
    methods = args.methods or SETTINGS[args.setting].get("methods", list(METHODS))
    unknown = [m for m in methods if m not in RUNS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}: use {', '.join(RUNS)}")
    if args.parallel < 1:
        raise SystemExit(f"--parallel={args.parallel} must be >= 1")
    if args.json is not None:
        json_path = pathlib.Path(args.json)
    else:  # a driver check must not overwrite the committed results
        json_path = RESULTS if SETTINGS[args.setting].get("evidence", True) else out / RESULTS.name
    if args.model is not None and not SETTINGS[args.setting].get("model"):
        raise SystemExit(f"--model is for settings on a real model (smollm2_gsm8k); {args.setting} trains its own")
    if not args.collect:
        jobs = queue(args.setting, methods, args.seeds, not args.no_lr_check and args.methods is None)
        if SETTINGS[args.setting].get("model"):
            if args.model is None or not (pathlib.Path(args.model) / "config.json").is_file():
                raise SystemExit(
                    f"--setting {args.setting} trains a real model: pass --model FOLDER, a converted model folder "
                    f"with a config.json (got {args.model!r}; docs/vllm.md says how to convert SmolLM2)"
                )
            model = pathlib.Path(args.model).resolve()
            jobs = [(method, seed, [*overrides, f"model.path={model}"]) for method, seed, overrides in jobs]
        run_all(out, args.setting, jobs, args.parallel, json_path)
    collect(out, args.setting, json_path)


if __name__ == "__main__":
    main()
