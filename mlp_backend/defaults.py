"""The default network and training settings, chosen from measurements on MAGIC.

One place for what ``mlp-backend train``, the sweep's unspecified keys and the
estimators use when nothing else is said. Measured with ``mlp-backend sweep
--repeats 3 --no-fuse`` and ``mlp-backend train`` on the MAGIC split 70/15/15
(split seed 0), float32, seeds 0, 1 and 2 (test accuracy):

- (256, 128) relu, Adam lr 5e-4, weight decay 1e-5, batch 32, 30 epochs,
  cosine schedule, best weights by validation loss: 0.8777, 0.8752, 0.8763
  (ROC AUC 0.9293, 0.9280, 0.9267). Without weight decay: 0.8770, 0.8777,
  0.8738; with 1e-4: 0.8770, 0.8749, 0.8756.
- Nesterov momentum at lr 0.01 or 0.02, or (512, 256): one seed at 0.8749.
- (128, 64) at lr 3e-3, batch 256, 60 epochs: 0.8752, 0.8777, 0.8728;
  (64, 32) with early stopping: 0.869.

The spread between seeds (about 0.003) is as large as the differences between
the better settings; smaller batches and the cosine schedule mattered most.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "hidden": (256, 128),
    "activation": "relu",
    "optimizer": "adam",
    "lr": 0.0005,
    "momentum": 0.9,
    "weight_decay": 1e-5,
    "batch_size": 32,
    "epochs": 30,
    "schedule": "cosine",
    "patience": 0,
    "metric": "val_loss",
    "seed": 0,
}
