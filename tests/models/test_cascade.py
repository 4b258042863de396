import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from alnm.errors import AlnmInputError
from alnm.evaluation import classification_metrics, delong_ci, youden_threshold
from alnm.models.cascade import PATHWAYS, STATES, UNKNOWN_STATE, NodalCascade, evaluate_cascade, pathway_table


def _cohort(n: int, seed: int, prefix: str) -> pd.DataFrame:
    """Logistic ground truth: SLN driven by x1 (and x2), NSLN among SLN-positive driven by x3; x4 noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x1", "x2", "x3", "x4"])
    X.index = [f"{prefix}{i:03d}" for i in range(n)]
    sln = (rng.random(n) < expit(-0.3 + 1.8 * X["x1"] + 0.6 * X["x2"])).astype(int)
    nsln = (rng.random(n) < expit(-0.4 + 1.8 * X["x3"])).astype(int)
    X["sln_status"] = sln
    X["nsln_status"] = pd.Series(nsln, index=X.index).where(sln == 1)
    return X


FEATURES = ["x1", "x2", "x3", "x4"]


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _cohort(300, 1, "T")


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return _cohort(300, 2, "V")


def _cascade(**kwargs) -> NodalCascade:
    return NodalCascade(LogisticRegression(), LogisticRegression(), **kwargs)


def _fit(frame: pd.DataFrame, cascade: NodalCascade | None = None) -> NodalCascade:
    cascade = cascade or _cascade()
    return cascade.fit(frame[FEATURES], frame["sln_status"], frame["nsln_status"])


class RecordingLogistic(LogisticRegression):
    """A real logistic regression that remembers which patients it was fitted on."""

    def fit(self, X, y, sample_weight=None):
        self.seen_ = list(X.index)
        return super().fit(X, y, sample_weight)


def test_stage_two_sees_only_sln_positive_training_patients(train, test):
    # NSLN labels on SLN-negative patients (here all 1) must be ignored, never used for training.
    frame = train.assign(nsln_status=train["nsln_status"].fillna(1))
    cascade = NodalCascade(RecordingLogistic(), RecordingLogistic())
    cascade.fit(frame[FEATURES], frame["sln_status"], frame["nsln_status"])
    sln_positive = list(train.index[train["sln_status"] == 1])
    assert cascade.stage_two_.seen_ == sln_positive == cascade.stage_two_patients_
    assert cascade.stage_one_.seen_ == list(train.index)
    cascade.predict_pathway(test[FEATURES])
    assert cascade.stage_two_.seen_ == sln_positive
    assert not hasattr(cascade.stage_two, "seen_")  # the unfitted estimators are cloned, not touched


def test_sln_negative_patients_cannot_change_stage_two(train, test):
    cascade = _fit(train)
    negative = train["sln_status"] == 0
    scrambled = train.copy()
    scrambled.loc[negative, FEATURES] = np.random.default_rng(9).normal(scale=10, size=(negative.sum(), 4))
    other = _fit(scrambled)
    positive = train.loc[~negative]
    by_hand = LogisticRegression().fit(positive[FEATURES], positive["nsln_status"].astype(int))
    for model in (cascade.stage_two_, other.stage_two_):
        np.testing.assert_allclose(model.coef_, by_hand.coef_)
    assert cascade.thresholds_["nsln"] == other.thresholds_["nsln"]
    np.testing.assert_allclose(
        cascade.predict_pathway(test[FEATURES])["p_nsln"], other.predict_pathway(test[FEATURES])["p_nsln"]
    )


def test_thresholds_are_youden_cuts_on_each_stage_training_predictions(train):
    cascade = _fit(train)
    X, positive = train[FEATURES], train["sln_status"] == 1
    p_sln = cascade.stage_one_.predict_proba(X)[:, 1]
    p_nsln = cascade.stage_two_.predict_proba(X[positive])[:, 1]
    assert cascade.thresholds_["sln"] == youden_threshold(train["sln_status"], p_sln).threshold
    expected = youden_threshold(train.loc[positive, "nsln_status"].astype(int), p_nsln).threshold
    assert cascade.thresholds_["nsln"] == expected


def test_pathway_applies_stage_one_then_stage_two_cut(train, test):
    cascade = _fit(train, _cascade(sln_threshold=0.4, nsln_threshold=0.6))
    assert cascade.thresholds_ == {"sln": 0.4, "nsln": 0.6}
    result = cascade.predict_pathway(test[FEATURES])
    assert list(result.columns) == ["p_sln", "p_nsln", "pathway"]
    assert list(result.index) == list(test.index)
    np.testing.assert_allclose(result["p_sln"], cascade.stage_one_.predict_proba(test[FEATURES])[:, 1])
    expected = [
        PATHWAYS[0] if s < 0.4 else PATHWAYS[2] if n >= 0.6 else PATHWAYS[1]
        for s, n in zip(result["p_sln"], result["p_nsln"], strict=True)
    ]
    assert result["pathway"].tolist() == expected
    assert set(expected) == set(PATHWAYS)


def test_each_stage_learns_its_own_signal_on_new_patients(train, test):
    cascade = _fit(train)
    frame = cascade.predict_pathway(test[FEATURES]).join(test[["sln_status", "nsln_status"]])
    report = evaluate_cascade(frame)
    assert report["stage_one"]["auc"] > 0.8
    assert report["stage_two"]["auc"] > 0.75
    one, two = cascade.stage_one_.coef_[0], cascade.stage_two_.coef_[0]
    assert abs(one[0]) > 3 * abs(one[2]) and abs(two[2]) > 3 * abs(two[0])
    assert report["pathway"]["agreement"] > 1 / 3


def test_evaluation_matches_delong_and_the_cross_table(train, test):
    cascade = _fit(train)
    frame = cascade.predict_pathway(test[FEATURES]).join(test[["sln_status", "nsln_status"]])
    report = evaluate_cascade(frame, thresholds=cascade.thresholds_, level=0.9)
    auc, lower, upper = delong_ci(test["sln_status"], frame["p_sln"], 0.9)
    assert report["stage_one"]["auc"] == auc and report["stage_one"]["auc_ci"] == [lower, upper]
    positive = frame[frame["sln_status"] == 1]
    y_two = positive["nsln_status"].astype(int)
    auc, lower, upper = delong_ci(y_two, positive["p_nsln"], 0.9)
    assert report["stage_two"]["auc"] == auc and report["stage_two"]["auc_ci"] == [lower, upper]
    assert report["stage_two"]["n"] == len(positive) and report["stage_two"]["n_pos"] == y_two.sum()
    metrics = classification_metrics(y_two, positive["p_nsln"], cascade.thresholds_["nsln"], 0.9)
    assert report["stage_two"]["sensitivity"] == metrics["sensitivity"]

    state = np.where(
        test["sln_status"] == 0, STATES[0], np.where(test["nsln_status"] == 1, STATES[2], STATES[1])
    )
    by_hand = pd.crosstab(frame["pathway"], state)
    table = report["pathway"]["table"]
    assert sum(table[p][s] for p in PATHWAYS for s in STATES) == len(test)
    for p in by_hand.index:
        for s in by_hand.columns:
            assert table[p][s] == by_hand.loc[p, s]
    correct = sum(table[p][s] for p, s in zip(PATHWAYS, STATES, strict=True))
    assert report["pathway"]["agreement"] == pytest.approx(correct / len(test))
    missed = report["pathway"]["missed"]
    assert (
        missed["sln_positive_as_sln_low_risk"]
        == table[PATHWAYS[0]][STATES[1]] + table[PATHWAYS[0]][STATES[2]]
    )
    assert (
        missed["nsln_positive_not_high_risk"] == table[PATHWAYS[0]][STATES[2]] + table[PATHWAYS[1]][STATES[2]]
    )


def test_stage_one_metrics_agree_with_the_pathway(train, test):
    cascade = _fit(train)
    frame = cascade.predict_pathway(test[FEATURES]).join(test[["sln_status", "nsln_status"]])
    cm = evaluate_cascade(frame, thresholds=cascade.thresholds_)["stage_one"]["confusion_matrix"]
    called_positive = frame["pathway"] != PATHWAYS[0]
    assert cm["tp"] == int((called_positive & (frame["sln_status"] == 1)).sum())
    assert cm["fp"] == int((called_positive & (frame["sln_status"] == 0)).sum())


def test_unknown_nsln_and_a_missing_class_are_reported_not_hidden(train, test):
    cascade = _fit(train)
    frame = cascade.predict_pathway(test[FEATURES]).join(test[["sln_status", "nsln_status"]])
    positives = frame.index[frame["sln_status"] == 1]
    frame.loc[positives[:3], "nsln_status"] = np.nan
    frame.loc[frame["nsln_status"] == 1, "nsln_status"] = 0  # no NSLN-positive patient left
    table = pathway_table(frame)
    assert list(table.columns) == [*STATES, UNKNOWN_STATE] and table[UNKNOWN_STATE].sum() == 3
    report = evaluate_cascade(frame)
    assert report["stage_two"]["n"] == len(positives) - 3 and report["stage_two"]["n_pos"] == 0
    assert report["stage_two"]["auc"] is None and report["stage_two"]["auc_ci"] is None
    assert report["stage_one"]["auc"] is not None


def test_stage_two_with_one_class_is_an_error_naming_the_counts(train):
    frame = train.assign(nsln_status=train["nsln_status"].where(train["sln_status"] == 0, 0))
    n = int(train["sln_status"].sum())
    with pytest.raises(AlnmInputError, match=rf"got {n} \(0 NSLN-positive, {n} NSLN-negative\)"):
        _fit(frame)


def test_too_few_sln_positive_patients_is_an_error_naming_the_counts(train):
    keep = list(train.index[train["sln_status"] == 0]) + list(train.index[train["sln_status"] == 1][:8])
    small = train.loc[keep]
    with pytest.raises(AlnmInputError, match=r"got 8 .* at least 10 patients and 3 of each class"):
        _fit(small)
    assert _fit(small, _cascade(min_stage_two=8, min_stage_two_class=1)).stage_two_patients_ == keep[-8:]


def test_bad_labels_name_the_patients(train):
    X = train[FEATURES]
    positive = train.index[train["sln_status"] == 1]
    missing = train["nsln_status"].copy()
    missing[positive[0]] = np.nan
    with pytest.raises(AlnmInputError, match=f"SLN-positive patient\\(s\\) {positive[0]} lack"):
        _cascade().fit(X, train["sln_status"], missing)
    odd = train["nsln_status"].copy()
    odd[positive[1]] = 2
    with pytest.raises(AlnmInputError, match=f"nsln_status must be 0, 1 or empty.*{positive[1]}"):
        _cascade().fit(X, train["sln_status"], odd)
    sln = train["sln_status"].astype(float)
    sln.iloc[4] = np.nan
    with pytest.raises(AlnmInputError, match="T004"):
        _cascade().fit(X, sln, train["nsln_status"])
    with pytest.raises(AlnmInputError, match="stage I needs both SLN classes"):
        _cascade().fit(X, np.ones(len(X)), train["nsln_status"].fillna(0))
    with pytest.raises(AlnmInputError, match="'youden'"):
        _fit(train, _cascade(sln_threshold="max"))


def test_evaluation_input_errors(train, test):
    cascade = _fit(train)
    frame = cascade.predict_pathway(test[FEATURES])
    with pytest.raises(AlnmInputError, match="sln_status"):
        evaluate_cascade(frame)
    labelled = frame.join(test[["sln_status", "nsln_status"]])
    labelled.iloc[2, labelled.columns.get_loc("pathway")] = "maybe"
    with pytest.raises(AlnmInputError, match="unknown pathway for patient\\(s\\) V002"):
        evaluate_cascade(labelled)


def test_arrays_clone_and_bundle_round_trip(train, test, tmp_path):
    cascade = _fit(train)
    X = train[FEATURES].to_numpy()
    from_arrays = _cascade().fit(X, train["sln_status"].to_numpy(), train["nsln_status"].to_numpy())
    result = from_arrays.predict_pathway(test[FEATURES].to_numpy())
    expected = cascade.predict_pathway(test[FEATURES])
    np.testing.assert_allclose(result["p_nsln"], expected["p_nsln"])
    assert result["pathway"].tolist() == expected["pathway"].tolist()
    assert clone(cascade).get_params()["min_stage_two"] == 10
    joblib.dump(cascade, tmp_path / "cascade.joblib")
    pd.testing.assert_frame_equal(
        joblib.load(tmp_path / "cascade.joblib").predict_pathway(test[FEATURES]), expected
    )
