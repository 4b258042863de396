"""The fits every model (and the cascade) is trained in: the design's fits, then the final one."""

import pandas as pd

from alnm.cohort.design import Design, Fit
from alnm.study.fitting import design_fits


def test_the_final_fit_is_added_unless_the_single_fit_already_trains_on_everyone():
    everyone, half = pd.Index(["a", "b", "c", "d"]), pd.Index(["a", "b"])
    single = Design([Fit("development", everyone, {"training": everyone})], final_train=everyone)
    assert [(f.name, final) for f, final in design_fits(single)] == [("development", True)]
    folds = [Fit("fold 1", half, {}), Fit("fold 2", everyone.difference(half), {})]
    fits = design_fits(Design(folds, final_train=everyone))
    assert [(f.name, final) for f, final in fits] == [("fold 1", False), ("fold 2", False), ("final", True)]
    assert fits[-1][0].train.equals(everyone) and fits[-1][0].cohorts == {}
