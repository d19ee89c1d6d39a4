"""benchmarks/sample_efficiency.py: the JSON it builds from run folders (keys, means, curves, resume)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import types

import numpy as np
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sample_efficiency", ROOT / "benchmarks" / "sample_efficiency.py")
se = importlib.util.module_from_spec(spec)
spec.loader.exec_module(se)


def fake_run(folder: pathlib.Path, initial: float, final: float, zero: list[float], finished: bool = True) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"batch_size": 4, "rollout": {"group_size": 2}}))
    rows = [{"step": 0, "eval_accuracy": initial}]
    for step, share in enumerate(zero, start=1):
        rows.append(
            {
                "step": step,
                "time_step_s": 2.0,
                "selection/selection_ms": 0.5 * step,
                "selection/update_ms": 0.5 * step,
                "zero_variance_fraction": share,
                "selected_levels": [0.0, 1.0, 1.0, None],
            }
        )
    rows.append({"step": len(zero), "eval_accuracy": final, "final": True})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    if finished:
        summary = {
            "initial_eval_accuracy": initial,
            "final_eval_accuracy": final,
            "unique_prompts_used": 10,
            "pool_size": 1000,
            "wall_clock_s": 9.0,
            "steps": len(zero),
            "initial_eval": {"accuracy_by_level": {"0": 0.5}},
            "final_eval": {"accuracy_by_level": {"0": 0.7}},
        }
        (folder / "summary.json").write_text(json.dumps(summary))


def test_collect_writes_the_issue_keys_with_seed_statistics(tmp_path):
    out = tmp_path / "runs"
    fake_run(out / "quickstart/uniform/seed0", 0.4, 0.5, [0.5, 0.3])
    fake_run(out / "quickstart/uniform/seed1", 0.4, 0.6, [0.1, 0.1])
    fake_run(out / "quickstart/des/seed0", 0.4, 0.7, [0.2, 0.2])
    fake_run(out / "quickstart/des/seed1", 0.4, 0.9, [0.2, 0.2], finished=False)  # still running: left out
    path = tmp_path / "se.json"
    document = se.collect(out, "quickstart", path)
    assert json.loads(path.read_text()) == document
    assert document["pool_size"] == 1000
    uniform = document["methods"]["uniform"]
    for key in (
        "final_accuracy_mean",
        "final_accuracy_std",
        "gain_mean",
        "unique_prompts_mean",
        "zero_variance_share_mean",
        "seeds",
    ):
        assert key in uniform
    assert uniform["seeds"] == [0, 1]
    assert uniform["final_accuracy_mean"] == pytest.approx(0.55)
    assert uniform["final_accuracy_std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert uniform["gain_mean"] == pytest.approx(0.15)
    assert uniform["zero_variance_share_mean"] == pytest.approx(np.mean([0.4, 0.1]))
    assert uniform["selection_overhead_ms_mean"] == pytest.approx(1.5)
    assert document["methods"]["des"]["seeds"] == [0]
    curve = uniform["runs"]["0"]["curve"]
    assert [p["step"] for p in curve] == [0, 2]
    assert [p["rollouts"] for p in curve] == [0, 16]  # 4 prompts x 2 rollouts per step
    assert [p["wall_clock_s"] for p in curve] == [0.0, 4.0]
    assert uniform["runs"]["0"]["selected_levels"] == {"0": 2, "1": 4}
    assert uniform["rollouts_mean"] == 16


def test_curve_counts_screening_rollouts(tmp_path):
    folder = tmp_path / "runs/quickstart/speed/seed0"
    fake_run(folder, 0.4, 0.5, [0.5, 0.5, 0.5])
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for row, spent in zip([r for r in rows if "time_step_s" in r], (20, 24, 30)):
        row["rollouts"] = spent  # a screening round adds rollouts beyond 4 prompts x 2
    rows.insert(3, {"step": 2, "eval_accuracy": 0.45})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = se.read_run(folder)
    assert [(p["step"], p["rollouts"]) for p in run["curve"]] == [(0, 0), (2, 44), (3, 74)]
    assert run["rollouts"] == 74


def test_zero_variance_share_counts_the_screened_candidates_rollouts():
    plain = {"zero_variance_fraction": 0.25}
    assert se.zero_variance_share(plain) == 0.25
    # 4 groups x 8 (a quarter zero-variance) after 8 candidates x 4 screened, half of them all-equal
    row = {**plain, "rollouts": 64, "screen_rollouts": 32, "selection/screen_qualified": 0.5}
    assert se.zero_variance_share(row) == pytest.approx((0.25 * 32 + 0.5 * 32) / 64)


def test_pool_mix_accuracy_is_numpys_weighted_average():
    rng = np.random.default_rng()
    weights = [int(w) for w in rng.integers(0, 13, size=12)]
    weights[int(rng.integers(12))] += 1  # at least one level weighs
    accuracy = rng.random(12)
    by_level = {str(level): float(a) for level, a in enumerate(accuracy)}
    assert se.pool_mix_accuracy(by_level, weights) == pytest.approx(np.average(accuracy, weights=weights))
    assert se.pool_mix_accuracy(by_level, [1] * 12) == pytest.approx(accuracy.mean())
    for bad in ([0] * 12, [1] * 11 + [-1]):
        with pytest.raises(ValueError, match="must be >= 0 with a positive sum"):
            se.pool_mix_accuracy(by_level, bad)
    del by_level["3"]
    with pytest.raises(ValueError, match=r"no entry for level\(s\) \[3\]"):
        se.pool_mix_accuracy(by_level, [1] * 12)
    assert se.pool_mix_accuracy(by_level, [1, 1, 1, 0]) == pytest.approx(accuracy[:3].mean())  # weight 0: unused


def test_collect_gives_the_pool_mix_gain_only_for_a_weighted_pool(tmp_path):
    out = tmp_path / "runs"
    fake_run(out / "skewed_pool/des/seed0", 0.4, 0.5, [0.5])
    fake_run(out / "skewed_pool/uniform/seed0", 0.4, 0.5, [0.5])
    folder = out / "skewed_pool/des/seed0"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["data"] = {"synthetic": {"level_weights": [3, 1]}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    summary = json.loads((folder / "summary.json").read_text())
    summary["initial_eval"]["accuracy_by_level"] = {"0": 0.9, "1": 0.1}
    summary["final_eval"]["accuracy_by_level"] = {"0": 0.8, "1": 0.5}
    (folder / "summary.json").write_text(json.dumps(summary))
    methods = se.collect(out, "skewed_pool", tmp_path / "se.json")["settings"]["skewed_pool"]["methods"]
    expected = np.average([0.8, 0.5], weights=[3, 1]) - np.average([0.9, 0.1], weights=[3, 1])
    assert methods["des"]["runs"]["0"]["gain_pool_mix"] == pytest.approx(expected)
    assert methods["des"]["gain_pool_mix_mean"] == pytest.approx(expected)
    assert methods["uniform"]["runs"]["0"]["gain_pool_mix"] is None  # equal mix: no second number
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    lines = report.pool_mix(methods)
    assert [line.split(" | ")[0] for line in lines if line.startswith("| des")] == ["| des"]  # uniform has none
    assert report.pool_mix({"uniform": methods["uniform"]}) == []


def test_collect_keeps_other_settings(tmp_path):
    out = tmp_path / "runs"
    fake_run(out / "quickstart/uniform/seed0", 0.4, 0.5, [0.5])
    fake_run(out / "full_pass/uniform/seed0", 0.4, 0.8, [0.5])
    path = tmp_path / "se.json"
    se.collect(out, "full_pass", path)
    document = se.collect(out, "quickstart", path)
    assert set(document["settings"]) == {"quickstart", "full_pass"}
    assert document["setting"] == "quickstart"
    assert document["settings"]["full_pass"]["methods"]["uniform"]["final_accuracy_mean"] == pytest.approx(0.8)


def test_collect_keeps_recorded_runs_whose_folders_are_gone(tmp_path, capsys):
    # Runs collected on an earlier machine: their folders are gone, their records must survive a collect
    # of new runs of the same setting; a run on disk replaces its record; the means cover the merged runs.
    first, path = tmp_path / "first", tmp_path / "se.json"
    fake_run(first / "quickstart/uniform/seed0", 0.4, 0.5, [0.5])
    fake_run(first / "quickstart/des/seed0", 0.4, 0.6, [0.5])
    se.collect(first, "quickstart", path)
    second = tmp_path / "second"
    fake_run(second / "quickstart/uniform/seed1", 0.4, 0.7, [0.5])
    fake_run(second / "quickstart/des/seed0", 0.4, 0.8, [0.5])  # re-run: replaces the recorded seed 0
    document = se.collect(second, "quickstart", path)
    uniform, des = document["methods"]["uniform"], document["methods"]["des"]
    assert uniform["seeds"] == [0, 1] and list(uniform["runs"]) == ["0", "1"]
    assert uniform["gain_mean"] == pytest.approx(np.mean([0.1, 0.3]))
    assert uniform["gain_std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert des["seeds"] == [0] and des["gain_mean"] == pytest.approx(0.4)
    printed = capsys.readouterr().out
    assert "kept 1 runs recorded" in printed and "uniform (seeds 0)" in printed and "warning" not in printed
    # A method since dropped from the driver keeps its recorded overrides; mixed batch shapes are named.
    record = json.loads(path.read_text())
    record["settings"]["quickstart"]["methods"]["gone_method"] = {
        **record["settings"]["quickstart"]["methods"]["des"],
        "overrides": ["selection.method=gone"],
    }
    record["settings"]["quickstart"]["methods"]["uniform"]["runs"]["1"]["group_size"] = 4
    path.write_text(json.dumps(record))
    document = se.collect(tmp_path / "empty", "quickstart", path)
    assert document["methods"]["gone_method"]["overrides"] == ["selection.method=gone"]
    assert "warning: quickstart/uniform's runs differ in (steps, prompts per step, G)" in capsys.readouterr().out
    assert json.loads(path.read_text()) == document


def test_report_gives_each_methods_gain_per_informative_group():
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    gains, informative = np.array([0.04, 0.05, 0.06]), np.array([30.0, 32.0, 35.0])
    runs = {
        str(seed): {"gain": g, "informative_groups_per_step": i, "unique_prompts": 600 + seed, "steps": 10}
        for seed, (g, i) in enumerate(zip(gains, informative))
    }
    per_seed = 1e3 * gains / informative
    value, se = report.value_per_group(runs)
    assert value == pytest.approx(per_seed.mean())
    assert se == pytest.approx(per_seed.std(ddof=1) / np.sqrt(3))
    assert report.value_per_group({"0": runs["0"]}) == (pytest.approx(per_seed[0]), None)
    assert report.value_per_group({"0": {"gain": 0.1, "informative_groups_per_step": 0.0}}) == (None, None)
    entry = {"runs": runs, "informative_groups_per_step_mean": informative.mean(), "gain_mean": gains.mean()}
    row = next(line for line in report.mechanism({"uniform": entry}) if line.startswith("| uniform"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:6] == [
        "32.3",
        "60.1",
        "n/a",  # no level counts recorded
        "+0.050",
        f"{per_seed.mean():.2f} ± {per_seed.std(ddof=1) / np.sqrt(3):.2f}",
    ]


def test_report_counts_effective_levels_like_scipys_entropy():
    from scipy.stats import entropy

    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    levels = [{"0": 10, "1": 30, "4": 60}, {"0": 5, "3": 5, "7": 0}]
    runs = {str(i): {"selected_levels": counts} for i, counts in enumerate(levels)}
    expected = np.mean([np.exp(entropy(list(counts.values()))) for counts in levels])
    assert report.effective_levels(runs) == pytest.approx(expected)
    assert report.effective_levels({"0": {"selected_levels": {str(i): 7 for i in range(12)}}}) == pytest.approx(12)
    assert report.effective_levels({"0": {"selected_levels": None}}) is None


def test_report_has_a_section_per_setting(tmp_path):
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    out = tmp_path / "runs"
    for setting, final in (("quickstart", 0.5), ("skewed_pool", 0.8)):
        fake_run(out / f"{setting}/uniform/seed0", 0.4, final, [0.5])
        fake_run(out / f"{setting}/des/seed0", 0.4, final + 0.1, [0.2])
    fake_run(out / "skewed_pool/uniform_lr2e-4/seed0", 0.4, 0.6, [0.5])
    fake_run(out / "skewed_pool/des_lr2e-4/seed0", 0.4, 0.7, [0.5])
    fake_run(out / "skewed_pool/des_screened/seed0", 0.4, 0.9, [0.1])
    fake_run(out / "smoke/des/seed0", 0.4, 0.7, [0.5])
    fake_run(out / "full_pass/uniform/seed0", 0.4, 0.5, [0.5] * 30)  # 2 s per step: 60 s in all
    se.collect(out, "smoke", tmp_path / "se.json")
    path = tmp_path / "se.json"
    se.collect(out, "full_pass", path)
    se.collect(out, "skewed_pool", path)
    se.collect(out, "quickstart", path)
    report.main(["--json", str(path), "--out", str(tmp_path / "bench")])
    text = (tmp_path / "bench/RESULTS.md").read_text()
    assert text.index("setting `quickstart`") < text.index("# Setting `skewed_pool`")
    assert "--setting skewed_pool" in text and "ratio 2.00" in text and "ratio 1.25" in text
    assert "At lr2e-4 (both, seeds 0): DES gain +0.300 vs uniform +0.200, ratio 1.50" in text
    assert "setting `smoke`" not in text  # the driver check is not evidence
    assert "- Within uniform's wall-clock: DES +0.200, best other" in text  # the quickstart's goal line
    # des_screened gets DES's checks (gain 0.5 vs uniform's 0.4), and is not one of DES's competitors
    # DES (0.4 -> 0.6 in one 2 s step of 8 rollouts) reaches the one-pass 0.5 at 1 s and 4 rollouts, within a
    # tenth of the reference's 60 s and 240 rollouts
    assert "- One-pass uniform reference (3438 steps, 1 seed(s)): final accuracy 0.500." in text
    assert "  - s of training: the reference spent 60, a tenth is 6; DES reached it at seed 0: 1: met." in text
    assert "  - rollouts: the reference spent 240, a tenth is 24; DES reached it at seed 0: 4: met." in text
    assert "## Goals of issue 8 (full_pass" not in text  # the reference setting has no goals of its own
    assert text.count("One-pass uniform reference") == 1  # the quickstart's goal only
    assert "  - des_screened gain +0.500 vs uniform +0.400: ratio 1.25 (goal >= 1.5): NOT met." in text
    assert "DES above every other finished method (uniform)" in text
    assert (tmp_path / "bench/results/sample_efficiency_steps_skewed_pool.png").stat().st_size > 0


def test_skewed_pool_checks_uniform_lr_only():
    jobs = [(m, s) for m, s, _ in se.queue("skewed_pool", ["uniform", "des"], [0, 1], lr_check=True)]
    assert jobs == [
        ("uniform", 0),
        ("des", 0),
        ("uniform_lr5e-5", 0),
        ("uniform_lr2e-4", 0),
        ("uniform_lr4e-4", 0),
        ("uniform", 1),
        ("des", 1),
    ]
    quickstart = [m for m, _, _ in se.queue("quickstart", list(se.METHODS), [0], True)]
    assert "des_lr2e-4" not in quickstart and "des_no_cot" in quickstart  # the skewed pool's lr pair stays there
    weights = next(o for o in se.common_overrides("skewed_pool") if o.startswith("data.synthetic.level_weights="))
    parsed = yaml.safe_load(weights.split("=", 1)[1])
    assert sum(parsed[i] for i in (0, 10, 11)) / sum(parsed) == pytest.approx(0.8)


def test_queue_is_seed_major_with_checks_after_the_first_seed():
    jobs = [(m, s) for m, s, _ in se.queue("quickstart", ["uniform", "des", "mopps"], [0, 1], lr_check=True)]
    assert jobs[:3] == [("uniform", 0), ("des", 0), ("uniform_b32", 0)]
    assert jobs[-3:] == [("uniform", 1), ("des", 1), ("mopps", 1)]
    assert len(jobs) == 3 * 2 + len(se.SETTINGS["quickstart"]["checks"])
    every = [m for m, _, _ in se.queue("quickstart", list(se.METHODS), [0], lr_check=False)]
    assert every[:3] == ["uniform", "des", "des_calibrated"]


def test_out_inside_the_repository_is_refused():
    with pytest.raises(SystemExit, match="inside the repository"):
        se.main(["--out", str(ROOT / "runs-here"), "--collect"])


def test_rerun_skips_finished_runs_and_starts_the_rest(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    fake_run(out / "quickstart/uniform/seed0", 0.4, 0.5, [0.5])
    started = []

    class Done:
        returncode = 0

        def poll(self):
            return 0

    def fake_launch(out_, setting, method, seed, overrides):
        started.append((method, seed))
        fake_run(se.run_dir(out_, setting, method, seed), 0.4, 0.6, [0.3])
        return Done()

    monkeypatch.setattr(se, "launch", fake_launch)
    monkeypatch.setattr(se, "POLL_S", 0.0)
    jobs = se.queue("quickstart", ["uniform", "des"], [0], lr_check=False)
    se.run_all(out, "quickstart", jobs, 2, tmp_path / "se.json")
    assert started == [("des", 0)]
    se.run_all(out, "quickstart", jobs, 2, tmp_path / "se.json")
    assert started == [("des", 0)]  # nothing left to run
    assert json.loads((tmp_path / "se.json").read_text())["methods"]["des"]["seeds"] == [0]


def test_gain_at_interpolates_between_evaluations_and_keeps_a_finished_runs_final_gain():
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    curve = [
        {"step": 0, "rollouts": 0, "wall_clock_s": 0.0, "accuracy": 0.4},
        {"step": 25, "rollouts": 1000, "wall_clock_s": 50.0, "accuracy": 0.5},
        {"step": 50, "rollouts": 2000, "wall_clock_s": 80.0, "accuracy": 0.6},
    ]
    run = {"initial_accuracy": 0.4, "curve": curve}
    assert report.gain_at(run, "rollouts", 1500) == pytest.approx(np.interp(1500, [0, 1000, 2000], [0, 0.1, 0.2]))
    assert report.gain_at(run, "wall_clock_s", 65.0) == pytest.approx(0.15)
    assert report.gain_at(run, "rollouts", 5000) == pytest.approx(0.2)  # finished within the budget: final gain
    with pytest.raises(ValueError, match="no 'rollouts' values"):
        report.gain_at({"initial_accuracy": 0.4, "curve": [{"step": 0, "accuracy": 0.4}]}, "rollouts", 1)
    short = {"initial_accuracy": 0.4, "curve": curve[:2]}  # uniform's budget: its mean, 1500 rollouts, 65 s
    methods = {
        "uniform": {"gain_mean": 0.15, "runs": {"0": short, "1": run}},
        "speed": {"gain_mean": 0.2, "runs": {"0": run}},
    }
    text = "\n".join(report.equal_budget(methods))
    assert "| speed | +0.200 | +0.150 | +0.150 |" in text
    assert "uniform's rollouts (1,500)" in text


def test_time_to_reach_interpolates_the_first_crossing():
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    curve = [(0.0, 0.40), (100.0, 0.45), (200.0, 0.42), (300.0, 0.60)]
    run = {"curve": [{"wall_clock_s": t, "accuracy": a} for t, a in curve]}
    assert report.time_to_reach(run, 0.40) == 0.0
    assert report.time_to_reach(run, 0.43) == pytest.approx(60.0)  # 0.40 -> 0.45 over 0..100 s
    assert report.time_to_reach(run, 0.50) == pytest.approx(200.0 + 100.0 * 0.08 / 0.18)  # after the dip
    assert report.time_to_reach(run, 0.61) is None


def test_one_pass_goal_reports_unmet_and_unmeasured():
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)

    def run(points, steps=100):
        return {"steps": steps, "curve": [{"wall_clock_s": t, "rollouts": r, "accuracy": a} for t, r, a in points]}

    reference = {
        "steps": 3438,
        "methods": {"uniform": {"final_accuracy_mean": 0.7, "runs": {"0": run([(1000.0, 5000, 0.7)], 3438)}}},
    }
    des = {"runs": {"0": run([(0.0, 0, 0.4), (40.0, 200, 0.8)]), "1": run([(0.0, 0, 0.4), (80.0, 400, 0.6)])}}
    lines = report.one_pass_goal(des, reference)
    assert lines[1] == (
        "  - s of training: the reference spent 1,000, a tenth is 100; DES reached it at seed 0: 30, "
        "seed 1: not within its 100 steps (80): NOT met."
    )
    assert lines[2].startswith("  - rollouts: the reference spent 5,000, a tenth is 500; DES reached it at seed 0: 150")
    assert report.one_pass_goal({"runs": {"0": des["runs"]["0"]}}, reference)[1].endswith(": met.")
    assert report.one_pass_goal(des, {}) == [
        "- One-pass uniform reference (`--setting full_pass`): no finished run: not measured."
    ]
    assert report.one_pass_goal(des, None) == []


def test_real_model_setting_needs_a_model_and_runs_its_preset(tmp_path, monkeypatch):
    queued = []
    monkeypatch.setattr(se, "run_all", lambda out, setting, jobs, parallel, path: queued.extend(jobs))
    monkeypatch.setattr(se, "collect", lambda out, setting, path: None)
    runs = ["--setting", "smollm2_gsm8k", "--out", str(tmp_path / "runs")]
    with pytest.raises(SystemExit, match="pass --model FOLDER"):
        se.main(runs)
    with pytest.raises(SystemExit, match="pass --model FOLDER"):
        se.main([*runs, "--model", str(tmp_path)])  # no config.json: not a model folder
    with pytest.raises(SystemExit, match="--model is for settings on a real model"):
        se.main(["--setting", "quickstart", "--out", str(tmp_path / "runs"), "--model", str(tmp_path)])
    assert queued == []
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    se.main([*runs, "--model", str(model), "--methods", "uniform", "des_screened"])
    expected = [(method, seed) for seed in (0, 1, 2) for method in ("uniform", "des_screened")]
    assert [(method, seed) for method, seed, _ in queued] == expected
    assert all(overrides[-1] == f"model.path={model.resolve()}" for _, _, overrides in queued)
    commands = []

    class Popen:
        def __init__(self, command, **kwargs):
            commands.append(command)
            self.pid = 0

    monkeypatch.setattr(
        se, "subprocess", types.SimpleNamespace(run=subprocess.run, Popen=Popen, STDOUT=subprocess.STDOUT)
    )
    se.launch(tmp_path / "runs", "smollm2_gsm8k", "des_screened", 0, [*se.RUNS["des_screened"], "model.path=/m"])
    command = commands[0]
    assert command[command.index("--config") + 1] == "smollm2_gsm8k"
    # the setting's own values replace the fixed ones (save_every=25)
    assert "save_every=2" in command and "save_every=25" not in command and "optim.threads=1" in command
    assert command[-3:] == ["selection.des.screen=true", "model.path=/m", "seed=0"]
    se.launch(tmp_path / "runs", "quickstart", "des", 0, se.RUNS["des"])
    assert "--config" not in commands[1]
    # A resume appends its commit: the run's record lists every version it ran on, oldest first.
    folder = se.run_dir(tmp_path / "runs", "quickstart", "des", 0)
    head = (folder / "code_version.txt").read_text().strip()
    (folder / "code_version.txt").write_text(f"0123abc\n{head}\n")
    se.launch(tmp_path / "runs", "quickstart", "des", 0, se.RUNS["des"])
    assert se.code_version(folder) == f"0123abc then {head}"
    assert se.code_version(tmp_path) is None


def test_smoke_does_not_write_the_committed_results(tmp_path, monkeypatch):
    fake_run(tmp_path / "runs/smoke/des/seed0", 0.4, 0.5, [0.5])
    written = []
    monkeypatch.setattr(se, "collect", lambda out, setting, path: written.append(path))
    se.main(["--setting", "smoke", "--out", str(tmp_path / "runs"), "--collect"])
    se.main(["--setting", "quickstart", "--out", str(tmp_path / "runs"), "--collect"])
    assert written == [tmp_path / "runs" / "sample_efficiency.json", se.RESULTS]


def test_collect_records_the_held_out_set_and_the_cost_of_signal(tmp_path):
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    out = tmp_path / "runs"
    # (method, seed, zero-variance fraction of the trained groups per step, screening rounds per step as
    # (screen rollouts, qualified share)); 2 steps of 4 prompts x 2 rollouts each
    runs = [
        ("uniform", 0, [0.75, 1.0], None),
        ("uniform", 1, [1.0, 1.0], None),  # no informative group: counted, not dropped
        ("speed", 0, [1.0, 1.0], [(16, 0.0), (16, 0.0)]),  # none at all
        ("des_screened", 0, [0.25, 0.5], [(16, 0.5), (16, 0.25)]),
    ]
    for method, seed, zero, screens in runs:
        folder = out / f"smollm2_gsm8k/{method}/seed{seed}"
        fake_run(folder, 0.0, 0.01, zero)
        summary = json.loads((folder / "summary.json").read_text())
        summary["final_eval"].update(n_problems=100, n_samples=1, decoding={"method": "greedy"})
        (folder / "summary.json").write_text(json.dumps(summary))
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for row in (r for r in rows if "time_step_s" in r):
            row["prompt_ids"] = [0, 1, 2, 3]
            if screens:
                screened, qualified = screens[row["step"] - 1]
                row.update(rollouts=8 + screened, screen_rollouts=screened)
                row["selection/screen_qualified"] = qualified
        (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path / "se.json"
    document = se.collect(out, "smollm2_gsm8k", path)
    setting = document["settings"]["smollm2_gsm8k"]
    assert setting["eval"] == {"problems": 100, "samples": 1, "decoding": "greedy"}
    assert setting["goals"] is False
    methods = setting["methods"]
    # uniform: 1 informative group in 2 seeds x 2 steps x 8 rollouts
    assert methods["uniform"]["rollouts_per_informative_group"] == pytest.approx(32.0)
    # des_screened: 3 + 2 informative groups for 2 x (8 + 16) rollouts, screening included
    assert methods["des_screened"]["runs"]["0"]["informative_groups"] == 5
    assert methods["des_screened"]["rollouts_per_informative_group"] == pytest.approx(48 / 5)
    assert methods["speed"]["rollouts_per_informative_group"] is None
    # zero-variance share counts the screened candidates: ((0.25 x 8 + 0.5 x 16) / 24 + (0.5 x 8 + 0.75 x 16) / 24) / 2
    wasted = np.mean([(0.25 * 8 + 0.5 * 16) / 24, (0.5 * 8 + 0.75 * 16) / 24])
    assert methods["des_screened"]["zero_variance_share_mean"] == pytest.approx(wasted)
    report.main(["--json", str(path), "--out", str(tmp_path / "bench")])
    text = (tmp_path / "bench/RESULTS.md").read_text()
    assert "held-out pass@1, 100 problems, greedy. Each step trains 4 prompts x 2 rollouts." in text
    assert f"| des_screened | {1 - wasted:.3f} | 2.50 | 9.6 | +0.010 |" in text
    assert "| uniform | 0.062 | 0.25 | 32.0 | +0.010 |" in text
    assert "| speed | 0.000 | 0.00 | none in 48 rollouts | +0.010 |" in text
    assert "(at steps 0, 2)" in text  # when the runs were evaluated, from their curves
    assert "## Goals of issue 8" not in text  # one seed on a model that barely learns: no goal lines


def test_evaluation_points_name_the_interval_or_list_the_steps():
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)

    def entry(steps):
        return {"runs": {"0": {"curve": [{"step": s} for s in steps]}}}

    assert report.evaluation_points(entry([0, 25, 50, 75, 100])) == "every 25 steps"
    assert report.evaluation_points(entry([0, 250, 500, 750, 838])) == "every 250 steps and at the end, step 838"
    assert report.evaluation_points(entry([0, 8])) == "at steps 0, 8"


def test_tenth_pass_des_is_checked_against_the_one_pass_reference(tmp_path):
    spec = importlib.util.spec_from_file_location("se_report", ROOT / "benchmarks" / "sample_efficiency_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    out = tmp_path / "runs"
    fake_run(out / "quickstart/uniform/seed0", 0.4, 0.5, [0.5])
    fake_run(out / "quickstart/des/seed0", 0.4, 0.5, [0.5])
    fake_run(out / "full_pass/uniform/seed0", 0.4, 0.8, [0.5] * 40)  # 80 s, 320 rollouts: a tenth is 8 s, 32
    fake_run(out / "tenth_pass/uniform/seed0", 0.4, 0.6, [0.5] * 4)
    fake_run(out / "tenth_pass/des/seed0", 0.4, 0.7, [0.5] * 4)  # never reaches 0.8
    path = tmp_path / "se.json"
    for setting in ("full_pass", "tenth_pass", "quickstart"):
        se.collect(out, setting, path)
    assert json.loads(path.read_text())["settings"]["tenth_pass"]["goals"] is False
    report.main(["--json", str(path), "--out", str(tmp_path / "bench")])
    text = (tmp_path / "bench/RESULTS.md").read_text()
    section = text[text.index("# Setting `tenth_pass`") :]
    assert "## Issue 8's one-pass goal (tenth_pass)" in section and "## Goals of issue 8 (tenth_pass" not in section
    assert "  - rollouts: the reference spent 320, a tenth is 32; DES reached it at seed 0: not within its 4 steps" in (
        section
    )


def test_collect_records_no_held_out_set_when_runs_disagree(tmp_path, capsys):
    out = tmp_path / "runs"
    for method, problems in (("uniform", 100), ("des", 48)):
        folder = out / f"smollm2_gsm8k/{method}/seed0"
        fake_run(folder, 0.0, 0.01, [1.0])
        summary = json.loads((folder / "summary.json").read_text())
        summary["final_eval"].update(n_problems=problems, n_samples=1, decoding={"method": "greedy"})
        (folder / "summary.json").write_text(json.dumps(summary))
    document = se.collect(out, "smollm2_gsm8k", tmp_path / "se.json")
    assert document["settings"]["smollm2_gsm8k"]["eval"] is None
    assert "differ in their held-out evaluation" in capsys.readouterr().out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["killed", "finished", "child_ignores_sigterm"])
def test_a_training_that_ends_leaves_no_process_behind(tmp_path, monkeypatch, how):
    """A training killed for memory used to leave its vLLM engine running (GBs of RAM). Here the 'training'
    starts a child that would sleep for minutes, then SIGKILLs itself (or exits cleanly): the driver ends
    the child when it sees the training end (SIGTERM, then SIGKILL for a child that ignores SIGTERM)."""
    import os
    import sys

    if not pathlib.Path("/proc/self/stat").exists():
        pytest.skip("needs Linux's /proc")
    child_pid = tmp_path / "child.pid"
    end = "sys.exit(0)" if how == "finished" else "os.kill(os.getpid(), signal.SIGKILL)"
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if how == "child_ignores_sigterm" else ""
    script = (
        "import os, signal, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import signal, time; {ignore}time.sleep(300)'])\n"
        "time.sleep(1)\n"  # the child has set its handler
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        f"{end}\n"
    )

    def fake_launch(out_, setting, method, seed, overrides):
        folder = se.run_dir(out_, setting, method, seed)
        folder.mkdir(parents=True, exist_ok=True)
        return se.start_run([sys.executable, "-c", script], folder, dict(os.environ))

    monkeypatch.setattr(se, "launch", fake_launch)
    monkeypatch.setattr(se, "POLL_S", 0.2)
    monkeypatch.setattr(se, "REAP_GRACE_S", 1.0)
    monkeypatch.setattr(se, "collect", lambda out, setting, path: None)
    se.run_all(tmp_path / "runs", "quickstart", [("uniform", 0, [])], 1, tmp_path / "se.json")
    assert _wait_gone(int(child_pid.read_text()))
    group = int((se.run_dir(tmp_path / "runs", "quickstart", "uniform", 0) / "run.pid").read_text())
    assert se.group_members(group) == [] and se.reap_group(group) == []  # the whole group has ended


def _stand_in(tmp_path, folder, child_pid, end):
    """A stand-in training command: starts a child that sleeps for minutes (writing its pid), then ``end``.
    The folder is in its argv, as a real training's ``--output-dir`` is (``live_pid`` checks it)."""
    import sys

    script = (
        "import os, signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        f"{end}\n"
    )
    return [sys.executable, "-c", script, str(folder)]


def _wait_gone(pid, seconds=10.0):
    import os
    import signal
    import time

    deadline = time.time() + seconds
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)  # do not leave it behind ourselves
    return not alive


def test_ctrl_c_on_the_driver_reaches_the_trainings_it_runs(tmp_path, monkeypatch):
    """The trainings run in their own sessions, so the driver passes Ctrl-C on: here the second launch raises
    KeyboardInterrupt while the first training (and its child) run; both must end."""
    import os
    import signal
    import time

    if not pathlib.Path("/proc/self/stat").exists():
        pytest.skip("needs Linux's /proc")
    child_pid, launched = tmp_path / "child.pid", []

    def fake_launch(out_, setting, method, seed, overrides):
        if launched:
            raise KeyboardInterrupt
        folder = se.run_dir(out_, setting, method, seed)
        folder.mkdir(parents=True, exist_ok=True)
        process = se.start_run(_stand_in(tmp_path, folder, child_pid, "time.sleep(300)"), folder, dict(os.environ))
        launched.append(process)
        while not child_pid.exists():  # the child is up
            time.sleep(0.05)
        return process

    monkeypatch.setattr(se, "launch", fake_launch)
    monkeypatch.setattr(se, "POLL_S", 0.1)
    jobs = [("uniform", 0, []), ("des", 0, [])]
    # Started as a shell starts background jobs, with SIGINT ignored (children inherit that): the trainings
    # must still end on the SIGINT the driver forwards (``kill -INT DRIVER``).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            se.run_all(tmp_path / "runs", "quickstart", jobs, 2, tmp_path / "se.json")
    finally:
        signal.signal(signal.SIGINT, previous)
    training, child = launched[0], int(child_pid.read_text())
    try:
        training.wait(timeout=10)
    except subprocess.TimeoutExpired:
        training.kill()
    assert training.returncode is not None and training.returncode != 0
    assert _wait_gone(child)


def test_an_adopted_run_is_reaped_when_it_ends(tmp_path, monkeypatch):
    """A training started (in its own session) by an earlier driver and still running is adopted by a new
    driver, which ends what it leaves behind once it ends."""
    import os
    import time

    if not pathlib.Path("/proc/self/stat").exists():
        pytest.skip("needs Linux's /proc")
    child_pid = tmp_path / "child.pid"
    folder = se.run_dir(tmp_path / "runs", "quickstart", "uniform", 0)
    folder.mkdir(parents=True)
    command = _stand_in(tmp_path, folder, child_pid, "time.sleep(1); os.kill(os.getpid(), signal.SIGKILL)")
    earlier = se.start_run(command, folder, dict(os.environ))  # the earlier driver's training
    deadline = time.time() + 10
    while not child_pid.exists() and time.time() < deadline:  # it runs its own command line (not a fork's)
        time.sleep(0.05)
    monkeypatch.setattr(se, "launch", lambda *args: pytest.fail("an adopted run must not be started again"))
    monkeypatch.setattr(se, "POLL_S", 0.2)
    monkeypatch.setattr(se, "REAP_GRACE_S", 1.0)
    monkeypatch.setattr(se, "collect", lambda out, setting, path: None)
    se.run_all(tmp_path / "runs", "quickstart", [("uniform", 0, [])], 1, tmp_path / "se.json")
    earlier.wait(timeout=10)
    assert _wait_gone(int(child_pid.read_text()))


def test_wide_settings_keep_the_quickstarts_rollouts_over_more_prompts():
    """The settings' claim (equal rollouts per step and per optimizer step, factor x the distinct prompts) holds
    for the configs the trainings load: the preset plus the driver's overrides, resolved by scalingrl."""
    from scalingrl.config import load_config, resolve_preset

    def resolved(setting):
        return load_config(resolve_preset("quickstart"), [*se.common_overrides(setting), "selection.method=uniform"])

    base = resolved("quickstart")
    for setting, factor in (("quickstart_g4", 2), ("quickstart_g2", 4)):
        wide = resolved(setting)
        assert wide.batch_size * wide.rollout.group_size == base.batch_size * base.rollout.group_size
        assert wide.grpo.updates_per_batch == base.grpo.updates_per_batch
        assert (wide.batch_size, wide.rollout.group_size) == (
            factor * base.batch_size,
            base.rollout.group_size // factor,
        )
        assert (wide.steps, wide.optim.lr, wide.optim.decay_steps) == (
            base.steps,
            base.optim.lr,
            base.optim.decay_steps,
        )
