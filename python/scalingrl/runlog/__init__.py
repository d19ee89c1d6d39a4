"""What a run leaves behind, one module per record.

- ``scalingrl.runlog.metrics``: ``metrics.jsonl`` (one line per step), TensorBoard events, the
  progress bar (``MetricsRecorder``, ``read_metrics``).
- ``scalingrl.runlog.selection_log``: ``selection_log.jsonl`` (which prompts each step chose and
  why), the per-prompt statistics (``prompt_stats.parquet``) and the prompts a run trained on
  (``used_prompts/``).
- ``scalingrl.runlog.report``: plots and ``report.md`` from those records
  (``python -m scalingrl.runlog.report RUN``).

Left out on purpose: checkpoints (``scalingrl.checkpoint``), which a run also resumes from.
"""
