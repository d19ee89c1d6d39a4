"""scalingrl: data-efficient GRPO for math reasoning.

Prompts are ranked by a Data Effectiveness Score and drawn through an exact dynamic weighted sampler
(``scalingrl.sampler``); rollout statistics come from fused kernels (``scalingrl.ops``); the GRPO loop
(``python -m scalingrl.train``) glues them to HF/vLLM rollouts and DeepSpeed updates. Importing the
package is cheap: heavy modules (torch, transformers, deepspeed) load only when their parts are used.
"""

__version__ = "0.1.0"
