"""The quickstart: budgets inside the space's range, and a delivered model that is not beaten by
the smallest Arch trained from scratch."""

from pathlib import Path

import pytest
from tiny_runs import TINY


def test_quickstart_budgets_lie_inside_the_space_range():
    from supernas.quickstart import budgets_in_range
    from supernas.spaces import CostModel

    cost = CostModel(TINY, 10)
    lo, hi = (float(cost.mflops(a)) for a in (TINY.smallest(), TINY.largest()))
    budgets = budgets_in_range(lo, hi)
    assert len(budgets) == 3 and all(lo < b <= hi for b in budgets) and budgets == sorted(set(budgets))
    assert budgets_in_range(1.0, 1.001) == [1.001]  # a range too narrow for 2 decimals: its top


@pytest.mark.slow
def test_quickstart_delivers_a_fine_tuned_model_and_its_val_top1(tmp_path, capsys):
    from supernas.quickstart import quickstart

    short = ["train.max_steps=3", "data.train_subset=256", "eval.bn_batches=1", "log.progress=false",
             "log.tensorboard=false", "run.threads=1"]
    r = quickstart(tmp_path / "qs", "cpu", overrides=short,
                   finetune_overrides=["train.max_steps=2", "log.progress=false", "log.tensorboard=false"])
    out = capsys.readouterr().out
    assert "top-1 on the validation split (359 images)" in out and "before the fine-tune" in out
    assert Path(r["export"]).is_dir() and 0 <= r["top1_val"] <= 100
    assert r["budgets"] == sorted(r["budgets"]) and len(r["budgets"]) == 3
