"""Run by torchrun in test_train.py: trains a tiny supernet on 2 gloo ranks, saves each rank's weights."""
import os
import sys

import torch
from tiny_runs import TINY_NAME  # this script's folder is first on sys.path: torchrun runs it as a file

from supernas.train.supernet import SupernetTrainer

out, run_dir = sys.argv[1], sys.argv[2]
cfg = {
    "run": {"dir": run_dir, "device": "cpu"},
    "space": TINY_NAME,
    "data": {"path": "digits", "image_size": 12, "train_subset": 256},
    "train": {"epochs": 1, "batch_size": 16, "workers": 0, "max_steps": 3},
    "sampler": {"kind": "attentive", "n_prior": 20000, "bin_width": 0.25},
    "eval": {"bn_batches": 2, "max_batches": 1},
    "log": {"progress": False, "tensorboard": False},
}
trainer = SupernetTrainer(cfg)
trainer.fit()
torch.save(trainer.net.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
