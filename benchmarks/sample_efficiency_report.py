"""Plots and benchmarks/RESULTS.md from benchmarks/results/sample_efficiency.json (finished runs only).

    python benchmarks/sample_efficiency_report.py [--json PATH] [--out benchmarks]

Writes ``benchmarks/results/sample_efficiency_steps.png`` (held-out accuracy against steps) and
``..._wallclock.png`` (against training wall-clock), each method's seed mean with its min-max spread
over seeds shaded, and ``benchmarks/RESULTS.md``: the table of every method with every seed's final
accuracy, and the issue's goals checked against the numbers; the headline setting (quickstart) first,
then one section per other setting with runs (plots suffixed ``_<setting>``). It states what the runs show; it does not
choose a winner by hand. A hand-written reading in ``benchmarks/RESULTS_notes.md``, if present, is
appended as it is (keep it in step with the numbers when the runs progress).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def curves(entry: dict, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, accuracies (seeds, points)) on the common evaluation steps of every finished seed."""
    runs = list(entry["runs"].values())
    steps = sorted(set.intersection(*(set(p["step"] for p in r["curve"]) for r in runs)))
    acc = np.array([[next(p["accuracy"] for p in r["curve"] if p["step"] == s) for s in steps] for r in runs])
    if axis == "steps":
        return np.array(steps, dtype=float), acc
    clock = np.array(
        [[next(p["wall_clock_s"] or 0.0 for p in r["curve"] if p["step"] == s) for s in steps] for r in runs]
    )
    return clock.mean(axis=0), acc


def held_out(spec: dict) -> str:
    """The held-out measure of a setting, from its JSON entry's ``eval`` ("pass@1" alone where the file does
    not record it: older files, or runs of one setting evaluated differently)."""
    described = spec.get("eval") or {}
    problems, samples = described.get("problems"), described.get("samples")
    if problems is None:
        return "pass@1"
    if described.get("decoding") == "greedy":
        return f"pass@1, {problems} problems, greedy"
    if samples is None:
        return f"pass@1, {problems} problems"
    return f"pass@1, {problems} problems x {samples} sample{'s' if samples != 1 else ''}"


def evaluation_points(entry: dict) -> str:
    """When a method's first run was evaluated: "every N steps" or the list of steps."""
    steps = [point["step"] for point in next(iter(entry["runs"].values()))["curve"]]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    if len(steps) > 2 and len(set(gaps)) == 1:
        return f"every {gaps[0]} steps"
    if len(steps) > 3 and len(set(gaps[:-1])) == 1:  # the last one is the end of the run
        return f"every {gaps[0]} steps and at the end, step {steps[-1]}"
    return "at steps " + ", ".join(map(str, steps))


def batch_shape(methods: dict) -> str:
    """Prompts x rollouts per step of the setting's uniform run (or its first method's), from the runs."""
    entry = methods.get("uniform") or next(iter(methods.values()))
    run = next(iter(entry["runs"].values()))
    if run.get("prompts_per_step") is None:
        return ""
    return f" Each step trains {run['prompts_per_step']} prompts x {run['group_size']} rollouts."


def plot(methods: dict, axis: str, path: pathlib.Path, title: str, measure: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, entry in methods.items():
        x, acc = curves(entry, axis)
        style = "-" if not name.startswith("des_") else ":"
        width = 2.5 if name in ("des", "uniform") else 1.2
        (line,) = ax.plot(x, acc.mean(axis=0), style, lw=width, label=f"{name} (n={acc.shape[0]})")
        if acc.shape[0] > 1:
            ax.fill_between(x, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.12)
    ax.set_xlabel("GRPO steps" if axis == "steps" else "training wall-clock (s, mean over seeds; shared 2-core CPU)")
    ax.set_ylabel(f"held-out accuracy ({measure})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_difference(entry: dict, reference: dict | None, key: str = "gain") -> str:
    """``key`` (a per-run gain) minus the reference's on the same seeds (same initial model and held-out
    draw): mean ± standard error over the common seeds, and their count."""
    if reference is None:
        return "n/a"
    seeds = sorted(set(entry["runs"]) & set(reference["runs"]), key=int)
    seeds = [s for s in seeds if entry["runs"][s].get(key) is not None and reference["runs"][s].get(key) is not None]
    diffs = np.array([entry["runs"][s][key] - reference["runs"][s][key] for s in seeds])
    if len(diffs) == 0:
        return "n/a"
    if len(diffs) == 1:
        return f"{diffs[0]:+.3f} (n=1)"
    return f"{diffs.mean():+.3f} ± {diffs.std(ddof=1) / np.sqrt(len(diffs)):.3f} (n={len(diffs)})"


def table(methods: dict) -> list[str]:
    uniform = methods.get("uniform", {}).get("gain_mean")
    lines = [
        "| method | seeds | final accuracy (mean ± std) | per-seed final | gain (final - initial) | gain / uniform's |"
        " gain - uniform's, paired by seed (mean ± s.e.) | unique prompts | zero-variance share | rollouts |"
        " selection ms/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in sorted(methods.items(), key=lambda item: -(item[1]["gain_mean"] or 0)):
        per_seed = ", ".join(f"{m['runs'][str(s)]['final_accuracy']:.3f}" for s in m["seeds"])
        ratio = f"{m['gain_mean'] / uniform:.2f}" if uniform else "n/a"
        lines.append(
            f"| {name} | {','.join(map(str, m['seeds']))} "
            f"| {m['final_accuracy_mean']:.3f} ± {m['final_accuracy_std']:.3f} "
            f"| {per_seed} | {m['gain_mean']:+.3f} ± {m['gain_std']:.3f} | {ratio} "
            f"| {paired_difference(m, methods.get('uniform'))} | {m['unique_prompts_mean']:.0f} "
            f"({100 * m['pool_share_used_mean']:.1f}%) | {m['zero_variance_share_mean']:.2f} | "
            f"{'n/a' if m.get('rollouts_mean') is None else format(m['rollouts_mean'], ',.0f')} | "
            f"{m['selection_overhead_ms_mean']:.1f} |"
        )
    return lines


def value_per_group(runs: dict) -> tuple[float | None, float | None]:
    """Held-out gain per informative group per step, x 1e-3: mean over seeds of ``gain /
    informative_groups_per_step`` and its standard error (None for one seed). Seeds without an
    informative group are left out; (None, None) if none has one (the report says n/a)."""
    values = [
        1e3 * r["gain"] / r["informative_groups_per_step"]
        for r in runs.values()
        if r.get("informative_groups_per_step")
    ]
    if not values:
        return None, None
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return float(np.mean(values)), se


def effective_levels(runs: dict) -> float | None:
    """Effective number of difficulty levels a run trained on: exp of the Shannon entropy (nats) of its
    selected-level shares (the Hill number of order 1: 12 for an even mix of 12 levels, 1 for one level),
    mean over seeds; None when no run records its level counts (``selected_levels``)."""
    values = []
    for run in runs.values():
        counts = np.array(list((run.get("selected_levels") or {}).values()), dtype=float)
        if counts.sum() > 0:
            shares = counts[counts > 0] / counts.sum()
            values.append(float(np.exp(-(shares * np.log(shares)).sum())))
    return float(np.mean(values)) if values else None


def mechanism(methods: dict) -> list[str]:
    """Per-step signal and policy movement next to the gain: does more signal per step buy progress?"""
    rows = []
    for name, m in sorted(methods.items(), key=lambda item: -(item[1].get("informative_groups_per_step_mean") or 0)):
        if m.get("informative_groups_per_step_mean") is None:
            continue
        value, se = value_per_group(m["runs"])
        levels = effective_levels(m["runs"])
        distinct = [
            r["unique_prompts"] / r["steps"] for r in m["runs"].values() if r.get("unique_prompts") and r.get("steps")
        ]
        cells = [
            f"{m['informative_groups_per_step_mean']:.1f}",
            f"{np.mean(distinct):.1f}" if distinct else "n/a",
            "n/a" if levels is None else f"{levels:.1f}",
            f"{m['gain_mean']:+.3f}",
            "n/a" if value is None else f"{value:.2f}" + ("" if se is None else f" ± {se:.2f}"),
            *(
                "n/a" if m.get(f"{key}_mean") is None else fmt.format(m[f"{key}_mean"])
                for key, fmt in (
                    ("train_reward", "{:.3f}"),
                    ("grad_norm", "{:.3f}"),
                    ("approx_kl_old", "{:.1e}"),
                    ("entropy", "{:.3f}"),
                )
            ),
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Signal and movement per step (means over steps and seeds)",
        "",
        "Informative groups: groups per step whose rewards differ (the only ones with a GRPO advantage). "
        "Training reward, gradient norm, `approx_kl_old` (k3 estimate of the KL between the policy being updated "
        "and the rollout policy, mean over the step's minibatches: how far one step moves the policy) and token "
        "entropy are on the training batches. New prompts / step: distinct prompts trained over the run divided by "
        "its steps (each has one first visit; the rest of the batch is replay). Gain / informative groups per step: "
        "a seed's held-out gain over its informative groups per step, x 1e-3, mean ± standard error over seeds "
        "(seeds with none are left out); it grows with the step budget, so compare it within a setting "
        "(docs/des_evidence.md section 13). Effective levels: exp of the entropy of the trained prompts' "
        "difficulty-level shares (12 = an even mix of 12 levels, 1 = one level).",
        "",
        "| method | informative groups / step | new prompts / step | effective levels | gain "
        "| gain / informative groups per step (x 1e-3) | training reward | grad norm | approx_kl_old | entropy |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def by_level(methods: dict) -> list[str]:
    """Per-level held-out accuracy change (final - initial, mean over seeds) and training share per level."""
    levels = None
    rows = []
    for name, m in methods.items():
        runs = [
            r for r in m["runs"].values() if r.get("accuracy_by_level_final") and r.get("accuracy_by_level_initial")
        ]
        if not runs:
            continue
        levels = levels or sorted(runs[0]["accuracy_by_level_final"], key=float)
        delta = [
            np.mean([r["accuracy_by_level_final"][k] - r["accuracy_by_level_initial"][k] for r in runs]) for k in levels
        ]
        picked = [sum((r.get("selected_levels") or {}).get(str(int(float(k))), 0) for r in runs) for k in levels]
        total = max(sum(picked), 1)
        rows.append(
            f"| {name} | " + " | ".join(f"{d:+.2f} ({100 * p / total:.0f}%)" for d, p in zip(delta, picked)) + " |"
        )
    if not rows:
        return []
    head = "| method | " + " | ".join(f"L{int(float(k))}" for k in levels) + " |"
    return [
        "## Per level: held-out accuracy change, and share of training prompts (mean over seeds)",
        "",
        "Levels of the synthetic task (docs/des_evidence.md lists what each is and the initial pass rates).",
        "",
        head,
        "|" + "---|" * (len(levels) + 1),
        *rows,
        "",
    ]


def pool_mix(methods: dict) -> list[str]:
    """Gains with the held-out accuracy re-weighted to the pool's level mix (settings with
    ``data.synthetic.level_weights``): does a method's gain hold on problems drawn like its training pool?"""
    rows = [
        f"| {name} | {m['gain_mean']:+.3f} | {m['gain_pool_mix_mean']:+.3f} ± {m['gain_pool_mix_std']:.3f} | "
        + ", ".join(f"{m['runs'][str(s)]['gain_pool_mix']:+.3f}" for s in m["seeds"])
        + f" | {paired_difference(m, methods.get('uniform'), 'gain_pool_mix')} |"
        for name, m in sorted(methods.items(), key=lambda item: -(item[1].get("gain_pool_mix_mean") or 0))
        if m.get("gain_pool_mix_mean") is not None
    ]
    if not rows:
        return []
    return [
        "## Held-out re-weighted to the pool's level mix",
        "",
        "The held-out set has every level equally often; re-weighting its per-level accuracies by the pool's "
        "`level_weights` estimates the accuracy on problems drawn like the training pool "
        "(`sample_efficiency.pool_mix_accuracy`; a larger sampling error where a few levels, ~43 problems each, "
        "carry most of the weight).",
        "",
        "| method | gain (equal mix) | gain (pool mix, mean ± std) | per seed | pool-mix gain - uniform's, "
        "paired (mean ± s.e.) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def gain_at(run: dict, axis: str, budget: float) -> float:
    """Held-out gain of one run once it had spent ``budget`` on ``axis`` ("rollouts" or "wall_clock_s"):
    linear interpolation between its evaluation points; a run that finished within the budget counts with
    its final gain. Raises ValueError for a run without points on ``axis``."""
    points = [(p[axis], p["accuracy"]) for p in run["curve"] if p.get(axis) is not None]
    if not points:
        raise ValueError(f"the run's curve has no {axis!r} values")
    spent, accuracy = zip(*points)
    return float(np.interp(min(budget, spent[-1]), spent, accuracy)) - run["initial_accuracy"]


def equal_budget(methods: dict) -> list[str]:
    """Gains within uniform's budget in rollouts and in wall-clock (its mean over seeds): the comparison for
    a method that spends more per step (``speed``'s screening) or less."""
    uniform = methods.get("uniform")
    if not uniform:
        return []
    budgets = {axis: np.mean([r["curve"][-1][axis] or 0.0 for r in uniform["runs"].values()]) for axis in AXES}
    rows = []
    for name, m in sorted(methods.items(), key=lambda item: -(item[1]["gain_mean"] or 0)):
        cells = [f"{np.mean([gain_at(r, axis, budgets[axis]) for r in m['runs'].values()]):+.3f}" for axis in AXES]
        rows.append(f"| {name} | {m['gain_mean']:+.3f} | " + " | ".join(cells) + " |")
    return [
        "## Within uniform's budget: equal rollouts and equal wall-clock",
        "",
        f"Gain once a method had spent uniform's rollouts ({budgets['rollouts']:,.0f}) or uniform's training "
        f"wall-clock ({budgets['wall_clock_s']:,.0f} s, mean over its seeds), interpolated linearly between "
        f"evaluations ({evaluation_points(uniform)}); a run that finished within the budget counts with its final "
        "gain. "
        "Wall-clock is noisy on this shared machine (runs of one method differ by ~10-20%).",
        "",
        "| method | gain at equal steps | gain within uniform's rollouts | gain within uniform's wall-clock |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


AXES = ("rollouts", "wall_clock_s")


def time_to_reach(run: dict, target: float, axis: str = "wall_clock_s") -> float | None:
    """What a run had spent on ``axis`` ("wall_clock_s": training seconds, or "rollouts") when its held-out
    accuracy first reached ``target``: linear interpolation between its evaluations (the first point counts
    as reached at its own value); None if it never does."""
    points = [(p[axis], p["accuracy"]) for p in run["curve"] if p.get(axis) is not None]
    if points and points[0][1] >= target:
        return float(points[0][0])
    for (t0, a0), (t1, a1) in zip(points, points[1:]):
        if a1 >= target:
            return float(t0 + (target - a0) / (a1 - a0) * (t1 - t0))
    return None


def one_pass_goal(des: dict, reference: dict | None) -> list[str]:
    """Issue 8's last goal: DES reaches the one-pass uniform run's final accuracy (``--setting full_pass``;
    ``reference`` is that setting's entry, {} before it has one; None: another pool, no such goal) within a
    tenth of that run's training wall-clock, on every seed. The same check on rollouts (not load-dependent:
    the wall-clocks come from runs made at different times on a shared machine)."""
    if reference is None:
        return []
    if "uniform" not in reference.get("methods", {}):
        return ["- One-pass uniform reference (`--setting full_pass`): no finished run: not measured."]
    uniform = reference["methods"]["uniform"]
    target = uniform["final_accuracy_mean"]
    lines = [
        f"- One-pass uniform reference ({reference['steps']} steps, {len(uniform['runs'])} seed(s)): final "
        f"accuracy {target:.3f}. Does DES reach it within a tenth of that run's budget, on every seed?"
    ]
    for axis, unit in (("wall_clock_s", "s of training"), ("rollouts", "rollouts")):
        budget = np.mean([r["curve"][-1][axis] or 0.0 for r in uniform["runs"].values()]) / 10
        cells = []
        for seed, run in des["runs"].items():
            spent = time_to_reach(run, target, axis)
            end = f"not within its {run['steps']} steps ({run['curve'][-1][axis] or 0:,.0f})"
            cells.append(f"seed {seed}: {end if spent is None else f'{spent:,.0f}'}")
        met = all((t := time_to_reach(run, target, axis)) is not None and t <= budget for run in des["runs"].values())
        lines.append(
            f"  - {unit}: the reference spent {10 * budget:,.0f}, a tenth is {budget:,.0f}; DES reached it at "
            f"{', '.join(cells)}: {'met' if met else 'NOT met'}."
        )
    return lines


def signal_cost(methods: dict) -> list[str]:
    """What each method paid for its signal: the share of its rollouts in groups whose rewards differed
    (screening rounds included), and rollouts per informative trained group."""
    rows = [
        f"| {name} | {1 - m['zero_variance_share_mean']:.3f} | {m['informative_groups_per_step_mean']:.2f} | "
        + (
            f"{m['rollouts_per_informative_group']:,.1f}"
            if m.get("rollouts_per_informative_group") is not None
            else f"none in {m['rollouts_mean'] * len(m['seeds']):,.0f} rollouts"
        )
        + f" | {m['gain_mean']:+.3f} |"
        for name, m in sorted(methods.items(), key=lambda item: -(1 - item[1]["zero_variance_share_mean"]))
        if "rollouts_per_informative_group" in m and m.get("informative_groups_per_step_mean") is not None
    ]
    if not rows:
        return []
    return [
        "## Informative rollouts: what the signal cost",
        "",
        "Informative share: the share of all rollouts (screening included) in groups or screening rounds whose "
        "rewards differed (mean over seeds); rollouts per informative group: every seed's rollouts over their "
        "trained groups with a GRPO advantage (pooled over seeds).",
        "",
        "| method | informative share of rollouts | informative groups / step | rollouts per informative group "
        "| gain |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def goals(methods: dict, reference: dict | None = None, samples: int | None = None) -> list[str]:
    des, uniform = methods.get("des"), methods.get("uniform")
    if not des or not uniform:
        return ["- DES or uniform has no finished run yet: goals not checkable."]
    # Other methods only: DES variants and uniform's checks (uniform_b32, uniform_lr*) are not competitors;
    # uniform itself always is, so the set is never empty here.
    others = {k: v for k, v in methods.items() if k != "des" and not k.startswith(("des_", "uniform_"))}
    seeds = min(len(des["seeds"]), len(uniform["seeds"]))
    lines = [
        f"- Finished: {len(methods)} method(s); DES and uniform with {seeds} common seed(s). "
        + (
            f"The held-out sampling error of one final accuracy is at most ~{0.5 / np.sqrt(samples):.2f} "
            f"({samples:,} samples), so a single seed decides nothing below ~{1.0 / np.sqrt(samples):.2f}."
            if samples
            else "The held-out set's size is not recorded: its sampling error is unknown."
        ),
        *standing("DES", des, uniform, others),
        f"- DES zero-variance share {des['zero_variance_share_mean']:.2f} (goal <= 0.20): "
        f"{'met' if des['zero_variance_share_mean'] <= 0.2 else 'NOT met'}.",
        f"- DES pool share used {100 * des['pool_share_used_mean']:.2f}% (goal <= 2%): "
        f"{'met' if des['pool_share_used_mean'] <= 0.02 else 'NOT met'}.",
        *tuned_baseline(methods),
        *one_pass_goal(des, reference),
    ]
    if "des_screened" in methods:  # the same checks for DES with SPEED's screen (docs/des.md)
        screened = methods["des_screened"]
        lines += [
            "- The same checks for `des_screened` (DES's candidates through SPEED's screen):",
            *("  " + line for line in standing("des_screened", screened, uniform, others)),
            f"  - des_screened zero-variance share {screened['zero_variance_share_mean']:.2f} (screening "
            f"included; goal <= 0.20): {'met' if screened['zero_variance_share_mean'] <= 0.2 else 'NOT met'}.",
        ]
    return lines


def standing(label: str, entry: dict, uniform: dict, others: dict) -> list[str]:
    """Goal lines of one DES entry: its gain against uniform's (ratio, goal >= 1.5) and against every other
    method's at equal steps, then within uniform's wall-clock and rollouts (``budget_goal``)."""
    ratio = entry["gain_mean"] / uniform["gain_mean"] if uniform["gain_mean"] else float("nan")
    best_other = max(others.items(), key=lambda item: item[1]["gain_mean"])
    above = entry["gain_mean"] > best_other[1]["gain_mean"]
    return [
        f"- {label} gain {entry['gain_mean']:+.3f} vs uniform {uniform['gain_mean']:+.3f}: ratio {ratio:.2f} "
        f"(goal >= 1.5): {'met' if ratio >= 1.5 else 'NOT met'}.",
        f"- Best other finished method: {best_other[0]} {best_other[1]['gain_mean']:+.3f}; "
        f"{label} above every other finished "
        f"method ({', '.join(sorted(others))}): {'yes' if above else 'NO'} "
        f"by the mean; {label} - {best_other[0]} paired by seed {paired_difference(entry, best_other[1])}.",
        *budget_goal(label, entry, uniform, others),
    ]


def budget_goal(label: str, des: dict, uniform: dict, others: dict) -> list[str]:
    """The 'above every other method' check again within uniform's wall-clock and rollouts (``gain_at``)."""
    lines = []
    for axis, name in (("wall_clock_s", "wall-clock"), ("rollouts", "rollouts")):
        budget = np.mean([r["curve"][-1][axis] or 0.0 for r in uniform["runs"].values()])
        gains = {
            key: np.mean([gain_at(r, axis, budget) for r in m["runs"].values()])
            for key, m in {label: des, **others}.items()
        }
        best = max((key for key in gains if key != label), key=gains.get)
        lines.append(
            f"- Within uniform's {name}: {label} {gains[label]:+.3f}, best other {best} {gains[best]:+.3f}: "
            f"{label} above every other method: {'yes' if gains[label] > gains[best] else 'NO'} (means over seeds)."
        )
    return lines


def tuned_baseline(methods: dict) -> list[str]:
    """DES against uniform at each other learning rate both ran with (``des_lr<x>`` and ``uniform_lr<x>``),
    on their common seeds: the ratio above uses the default lr, which may not be uniform's best."""
    lines = []
    for name in sorted(methods):
        if not name.startswith("uniform_lr") or f"des_{name.removeprefix('uniform_')}" not in methods:
            continue
        des, uniform = methods[f"des_{name.removeprefix('uniform_')}"], methods[name]
        seeds = sorted(set(des["runs"]) & set(uniform["runs"]), key=int)
        gain = {k: np.mean([m["runs"][s]["gain"] for s in seeds]) for k, m in (("des", des), ("uniform", uniform))}
        ratio = gain["des"] / gain["uniform"] if gain["uniform"] else float("nan")
        lines.append(
            f"- At {name.removeprefix('uniform_')} (both, seeds {','.join(seeds)}): DES gain {gain['des']:+.3f} vs "
            f"uniform {gain['uniform']:+.3f}, ratio {ratio:.2f}; paired {paired_difference(des, uniform)}."
        )
    return lines


#: Settings on the one-pass reference's pool and model, whose DES runs the one-pass goal checks: the
#: quickstart (100 steps) and ``tenth_pass`` (a tenth of the reference's steps, the goal's own budget).
ON_THE_REFERENCE_POOL = ("quickstart", "tenth_pass")


def setting_section(
    name: str, spec: dict, out: pathlib.Path, headline: bool, reference: dict | None = None
) -> list[str]:
    """Plots and the markdown section of one setting (``spec``: its entry under ``settings`` in the JSON;
    ``reference``: the ``full_pass`` entry, for the one-pass goal of the settings on its pool)."""
    methods = spec["methods"]
    suffix = "" if headline else f"_{name}"
    steps_png, wall_png = f"sample_efficiency_steps{suffix}.png", f"sample_efficiency_wallclock{suffix}.png"
    measure = held_out(spec)
    plot(methods, "steps", out / "results" / steps_png, f"{name}: accuracy vs steps", measure)
    plot(methods, "wall", out / "results" / wall_png, f"{name}: accuracy vs wall-clock", measure)
    described = spec.get("eval") or {}
    samples = (described.get("problems") or 0) * (described.get("samples") or 0) or None
    with_goals = spec.get("goals", name != "full_pass")  # full_pass: the quickstart's reference
    return [
        f"(setting `{name}`, pool {spec['pool_size']} prompts, {spec['steps']} steps, "
        f"common overrides `{' '.join(spec['common_overrides'])}`). The runs come from",
        f"`python benchmarks/sample_efficiency.py --setting {name} --out RUNS_DIR` (docs/des_evidence.md).",
        f"Only finished runs count; every finished seed is listed. Accuracy: held-out {measure}.{batch_shape(methods)}",
        "",
        *table(methods),
        "",
        *mechanism(methods),
        *by_level(methods),
        *pool_mix(methods),
        *equal_budget(methods),
        *signal_cost(methods),
        *(
            [f"## Goals of issue 8 ({name}, mean over seeds, equal steps)", "", *goals(methods, reference, samples), ""]
            if with_goals
            else []
        ),
        *(
            [f"## Issue 8's one-pass goal ({name})", "", *one_pass_goal(methods["des"], reference), ""]
            if not with_goals and reference is not None and "des" in methods
            else []
        ),
        f"![accuracy vs steps](results/{steps_png})",
        "",
        f"![accuracy vs wall-clock](results/{wall_png})",
        "",
    ]


def shown(path: pathlib.Path) -> str:
    """``path`` relative to the repository when inside it, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/sample_efficiency.json"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = parser.parse_args(argv)
    document = json.loads(pathlib.Path(args.json).read_text())
    out = pathlib.Path(args.out)
    if not document["methods"]:
        raise SystemExit(f"{args.json} has no finished run yet")
    (out / "results").mkdir(parents=True, exist_ok=True)
    headline = document["setting"]
    settings = document.get("settings") or {headline: document}
    text = [
        "# Sample efficiency: every selection method on the real GRPO loop",
        "",
        f"Generated by `python benchmarks/sample_efficiency_report.py` from `{shown(pathlib.Path(args.json))}`",
        *setting_section(
            headline,
            settings.get(headline, document),
            out,
            True,
            settings.get("full_pass", {}) if headline in ON_THE_REFERENCE_POOL else None,
        ),
    ]
    for name, spec in settings.items():
        if name not in (headline, "smoke") and spec["methods"]:  # smoke checks the driver: not evidence
            text += [
                f"# Setting `{name}`",
                "",
                "Same tables and checks as above" if spec.get("goals", name != "full_pass") else "Same tables as above",
                *setting_section(
                    name, spec, out, False, settings.get("full_pass", {}) if name in ON_THE_REFERENCE_POOL else None
                ),
            ]
    text += [
        "Wall-clock is the sum of the runs' step times on a 2-core machine shared with other jobs: it is noisy and",
        "only comparable within one batch of runs; steps and rollouts are exact (batch_size x group_size per step,",
        "given at the top of each section; the checks uniform_b32 and uniform_b128 use 32 and 128 prompts;",
        "`speed` and `des_screened` add their screening round's candidates x `selection.speed.screen_rollouts`",
        "per step: the tables' `rollouts` column has each method's total).",
        "",
    ]
    extra = pathlib.Path(out / "RESULTS_notes.md")
    if extra.exists():
        text += [extra.read_text()]
    (out / "RESULTS.md").write_text("\n".join(text))
    print(f"wrote {out / 'RESULTS.md'} and the plots")


if __name__ == "__main__":
    main()
