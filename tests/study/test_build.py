"""Model building from the study config: fusion options reach the fusion estimators."""

from study_fixtures import STUDY, write_study

from alnm.cohort.config import load_config
from alnm.cohort.loading import load_study
from alnm.models.fusion import WeightedVotingClassifier
from alnm.study.build import build_model


def test_soft_voting_averages_member_probabilities(tmp_path):
    models = {**STUDY["models"], "Soft": {"kind": "voting", "members": ["Clinical", "Imaging"], "soft": True}}
    config, root = load_config(write_study(tmp_path, models=models))
    data = load_study(config, root)
    soft, hard = build_model("Soft", config, data, root), build_model("Voting", config, data, root)
    assert isinstance(soft, WeightedVotingClassifier) and soft.soft_average and not hard.soft_average
    X, y = data.table, data.table[config.data.label].to_numpy()
    p = soft.fit(X, y).predict_proba(X)[:, 1]
    members = [m.predict_proba(X)[:, 1] for m in soft.estimators_]
    weights = list(soft.weights_.values())
    assert abs(p - (weights[0] * members[0] + weights[1] * members[1]) / sum(weights)).max() < 1e-12
