"""Hyperparameter sweeps: plan trials, fuse them into stacks, run, record.

``spec`` turns options, presets and spec files into trials; ``plan`` groups
trials into fused stacks; ``execute`` trains groups behind the standard
``concurrent.futures.Executor`` interface (in process, local processes or a
Dask cluster); ``folder`` owns the sweep folder on disk; ``report`` reads it.
"""
