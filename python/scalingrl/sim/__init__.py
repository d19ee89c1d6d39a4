"""Simulated learner that exercises prompt-selection methods on a CPU in seconds.

A population of synthetic prompts with latent difficulty and a scalar learner skill. Training on a
prompt moves the skill in proportion to the GRPO signal that prompt's group carries (p * (1 - p), zero
for all-equal groups) and to how close the prompt sits to the skill frontier, less for prompts already
replayed often; replayed prompts also get easier without transferring (memorisation), and the skill
decays slowly (forgetting). Rollout outcomes are Bernoulli draws; CoT statistics grow with difficulty
and with the learner's uncertainty. ``run_schedule`` drives a ``scalingrl.selection`` selector against it.

It tests the selection machinery (budgets, costs, curriculum dynamics). It is not calibrated: it ranks
methods opposite to the real GRPO loop (AdaRFT first here, last there), so it is neither evidence for
a method nor a tool to tune knobs with (docs/simulator.md gives the numbers and assumptions).
Left out on purpose: any real model, tokens or text.
"""

from scalingrl.sim.learner import LearnerConfig, SimulatedLearner, SyntheticPool, make_pool, run_method, run_schedule

__all__ = ["LearnerConfig", "SimulatedLearner", "SyntheticPool", "make_pool", "run_method", "run_schedule"]
