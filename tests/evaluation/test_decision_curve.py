import numpy as np
import pytest

from alnm.evaluation.decision_curve import (
    decision_curve,
    interventions_avoided,
    net_benefit,
    treat_all_net_benefit,
)


def test_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.3, 0.2, 0.1])
    # At t = 0.3: treated = first three; TP = 2, FP = 1; NB = 2/5 - 1/5 * 0.3/0.7.
    assert net_benefit(y, p, np.array([0.3]))[0] == pytest.approx(0.4 - 0.2 * 3 / 7, abs=1e-15)
    assert treat_all_net_benefit(y, np.array([0.3]))[0] == pytest.approx(0.4 - 0.6 * 3 / 7, abs=1e-15)


def test_interventions_avoided_per_100():
    assert interventions_avoided(np.array([0.2]), np.array([0.1]), np.array([0.5]))[0] == pytest.approx(10)


def test_thresholds_outside_the_open_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        net_benefit(np.array([0, 1]), np.array([0.2, 0.8]), np.array([0.0, 0.5]))


def test_decision_curve_table_and_bands():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.15, 400), 0.01, 0.99)
    table = decision_curve(y, {"model": p}, n_boot=200, seed=1)
    assert set(table["model"]) == {"model", "all", "none"}
    assert (table.loc[table["model"] == "none", "net_benefit"] == 0).all()
    model = table[table["model"] == "model"]
    assert (model["net_benefit_lo"] <= model["net_benefit"] + 1e-12).all()
    assert (model["net_benefit_hi"] >= model["net_benefit"] - 1e-12).all()
    assert (model["net_benefit_hi"] - model["net_benefit_lo"]).max() > 0
    again = decision_curve(y, {"model": p}, n_boot=200, seed=1)
    assert again.equals(table)
