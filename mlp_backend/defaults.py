"""The default network and training settings, chosen from measurements on MAGIC.

One place for what ``mlp-backend train``, the sweep's unspecified keys and the
estimators use when nothing else is said. Measured on the MAGIC split 70/15/15
(split seed 0), float32, seeds 0, 1 and 2 (test accuracy / ROC AUC):

- (256, 128) relu, Adam lr 5e-4, batch 32, 30 epochs, cosine schedule, best
  weights by validation loss: 0.8777/0.9293, 0.8763/0.9284, 0.8759/0.9268.
- (128, 64) at lr 3e-3, batch 256, 60 epochs, cosine: 0.8752, 0.8777, 0.8728.
- (64, 32) at lr 3e-3, batch 256, early stopping after 10 epochs: 0.869.

Smaller batches and the cosine schedule mattered most; wider or deeper
networks and weight decay did not help.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "hidden": (256, 128),
    "activation": "relu",
    "optimizer": "adam",
    "lr": 0.0005,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 30,
    "schedule": "cosine",
    "patience": 0,
    "metric": "val_loss",
    "seed": 0,
}
