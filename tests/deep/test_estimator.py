"""CNNClassifier and DeepFeatures on tiny synthetic blob crops: training only on fit's patients, new
cohorts through set_crops, pickling, clear errors, and cross-fitted deep features that never come from a
network that saw the patient (permuted labels -> cross-validated AUC near 0.5)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alnm.deep.data import CropSet
from alnm.deep.estimator import CNNClassifier, CNNEnsemble, DeepFeatures, procrustes_alignment
from alnm.deep.train import embed_patients
from alnm.errors import AlnmInputError
from alnm.evaluation.discrimination import auc_score
from alnm.imaging.crops import read_crops_manifest
from alnm.models.fusion import StackingFusion

from .test_data import write_blob_crops

OPTIONS = {"epochs": 4, "batch_size": 16, "warmup_epochs": 1, "inner_fraction": 0.25, "device": "cpu"}
TINY = {"epochs": 1, "patience": 1, "batch_size": 16, "warmup_epochs": 0, "device": "cpu", "num_threads": 1}
FEATURE_OPTIONS = {**OPTIONS, "epochs": 2, "batch_size": 32}


def table(labels: dict[str, int], patients: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """X indexed by patient_id with a tabular column the CNN must ignore, and y in X's order."""
    X = pd.DataFrame({"age": np.arange(len(patients))}, index=pd.Index(patients, name="patient_id"))
    return X, np.array([labels[p] for p in patients])


pytestmark = pytest.mark.usefixtures("deterministic")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    csv, labels = write_blob_crops(folder / "train", 36, slices=2)
    new_csv, new_labels = write_blob_crops(folder / "new", 8, slices=1, seed=5, prefix="N")
    return csv, labels, new_csv, new_labels


@pytest.fixture(scope="module")
def fitted(cohort):
    csv, labels, _, _ = cohort
    train = list(labels)[:24]
    model = CNNClassifier(crops=str(csv), options=OPTIONS).fit(*table(labels, train))
    return model, train


def test_classifier_trains_on_fit_patients_and_predicts_unseen_ones(fitted, cohort):
    model, train = fitted
    _, labels, _, _ = cohort
    assert sorted(model.train_patients_ + model.inner_patients_) == sorted(train)
    assert 1 <= model.best_epoch_ <= len(model.history_) <= OPTIONS["epochs"]
    test = list(labels)[24:]
    X_test, y_test = table(labels, test)
    proba = model.predict_proba(X_test)
    assert proba.shape == (12, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert auc_score(y_test, proba[:, 1]) > 0.8
    assert set(model.predict(X_test)) <= {0, 1}


def test_pickle_round_trip_and_new_cohort_through_set_crops(fitted, cohort):
    model, _ = fitted
    _, labels, new_csv, new_labels = cohort
    X_test, _ = table(labels, list(labels)[24:])
    restored = pickle.loads(pickle.dumps(model))
    assert not hasattr(restored, "_network_cache") and not hasattr(restored, "_cropset_cache")
    np.testing.assert_array_equal(restored.predict_proba(X_test), model.predict_proba(X_test))
    X_new, y_new = table(new_labels, list(new_labels))
    assert restored.set_crops(new_csv) is restored
    assert restored.predict_proba(X_new).shape == (8, 2)
    with pytest.raises(AlnmInputError, match=r"2 patient\(s\) have no crops in .*crops.csv: P000, P001"):
        restored.predict_proba(pd.DataFrame(index=["N000", "P000", "P001"]))


def test_same_seed_gives_identical_predictions_and_checkpoints_resume(fitted, cohort, tmp_path):
    model, train = fitted
    _, labels, _, _ = cohort
    X_test, _ = table(labels, list(labels)[24:])
    again = CNNClassifier(crops=model.crops, options=OPTIONS, checkpoint_dir=str(tmp_path))
    again.fit(*table(labels, train))
    np.testing.assert_array_equal(again.predict_proba(X_test), model.predict_proba(X_test))
    (run,) = tmp_path.glob("run-*")  # one folder per set of patients and options
    assert (run / "checkpoint.pt").is_file()
    resumed = CNNClassifier(crops=model.crops, options=OPTIONS, checkpoint_dir=str(tmp_path))
    resumed.fit(*table(labels, train))  # the finished run is picked up, not trained again
    assert resumed.history_ == model.history_
    np.testing.assert_array_equal(resumed.predict_proba(X_test), model.predict_proba(X_test))


def test_crops_that_do_not_fit_the_network_are_errors(fitted, tmp_path):
    model, _ = fitted
    two_channels, labels = write_blob_crops(tmp_path / "c2", 4, slices=1, channels=2)
    X, _ = table(labels, list(labels))
    with pytest.raises(AlnmInputError, match=r"\(2, 32, 32\) but the network was trained on \(1, 32, 32\)"):
        pickle.loads(pickle.dumps(model)).set_crops(two_channels).predict_proba(X)
    larger, labels = write_blob_crops(tmp_path / "s", 4, slices=1, size=40)
    with pytest.raises(AlnmInputError, match=r"\(1, 40, 40\) but the network was trained on \(1, 32, 32\)"):
        pickle.loads(pickle.dumps(model)).set_crops(larger).predict_proba(X)


def test_bad_input_is_reported(cohort):
    csv, labels, _, _ = cohort
    X, y = table(labels, list(labels)[:8])
    with pytest.raises(AlnmInputError, match="options: epochs: Input should be greater than or equal to 1"):
        CNNClassifier(crops=str(csv), options={"epochs": 0}).fit(X, y)
    with pytest.raises(AlnmInputError, match="options: colour: Extra inputs are not permitted"):
        DeepFeatures(crops=str(csv), options={"colour": 1}).fit(X, y)
    with pytest.raises(AlnmInputError, match="pass a table indexed by patient_id, not a bare array"):
        CNNClassifier(crops=str(csv), options=OPTIONS).fit(X.to_numpy(), y)
    with pytest.raises(AlnmInputError, match="no crops manifest"):
        CNNClassifier().fit(X, y)
    with pytest.raises(AlnmInputError, match=r"1 patient\(s\) have no crops in .*: Z9"):
        CNNClassifier(crops=str(csv), options=OPTIONS).fit(*table({**labels, "Z9": 1}, ["P000", "Z9"]))
    with pytest.raises(AlnmInputError, match="0 or 1.*P001"):
        CNNClassifier(crops=str(csv), options=OPTIONS).fit(X, np.where(y == 1, 2, 0))
    with pytest.raises(
        AlnmInputError, match=r"2 training patients \(1 positive, 1 negative\) cannot give an inner"
    ):
        CNNClassifier(crops=str(csv), options=OPTIONS).fit(*table(labels, ["P000", "P001"]))
    with pytest.raises(AlnmInputError, match="align must be 'procrustes' or 'none'"):
        DeepFeatures(crops=str(csv), options=OPTIONS, align="cca").fit_transform(X, y)
    with pytest.raises(AlnmInputError, match="3 folds needs at least 3 patients of each class"):
        DeepFeatures(crops=str(csv), options=OPTIONS).fit_transform(*table(labels, list(labels)[:4]))


def cv_auc(rows: pd.DataFrame, y: np.ndarray) -> float:
    """Cross-validated AUC of a ridge logistic regression on the rows (a DLScore in miniature)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    return auc_score(y, cross_val_predict(model, rows, y, cv=folds, method="predict_proba")[:, 1])


def assert_cross_fitted(features: DeepFeatures, rows: pd.DataFrame, patients: list[str], csv) -> None:
    """Every training patient's row is the embedding by the one fold network that never trained or
    early-stopped on it (mapped by that fold's alignment, fitted on the fold's own patients)."""
    crops = CropSet.from_manifest(read_crops_manifest(csv))
    full = features.network_.model()
    embedded = []
    for k, fold in enumerate(features.folds_):
        held_out, seen = fold["held_out"], fold["train"] + fold["inner"]
        assert set(held_out).isdisjoint(seen)
        assert sorted(held_out + seen) == sorted(patients)
        network = features.fold_models_[k].model()
        raw = embed_patients(network, crops, held_out)
        if features.align == "none":
            expected = raw
        else:  # the map is fitted on the fold's own patients only
            alignment = procrustes_alignment(
                embed_patients(network, crops, seen), embed_patients(full, crops, seen)
            )
            np.testing.assert_allclose(alignment.rotation, features.alignments_[k].rotation, atol=1e-5)
            expected = features.alignments_[k].apply(raw)
        np.testing.assert_allclose(rows.loc[held_out].to_numpy(), expected, rtol=1e-4, atol=1e-5)
        embedded += held_out
    assert sorted(embedded) == sorted(patients)  # each training patient embedded exactly once


def test_cross_fitted_deep_features_carry_the_signal_and_new_patients_use_the_full_network(cohort):
    csv, labels, new_csv, new_labels = cohort
    patients = list(labels)
    X, y = table(labels, patients)
    features = DeepFeatures(crops=str(csv), options=FEATURE_OPTIONS, keep_fold_models=True)
    rows = features.fit_transform(X, y)
    assert list(rows.index) == patients and list(rows.columns) == [f"deep_{i:03d}" for i in range(512)]
    assert list(features.get_feature_names_out()) == list(rows.columns)
    assert_cross_fitted(features, rows, patients, csv)
    assert cv_auc(rows, y) > 0.8
    assert not np.allclose(features.transform(X).to_numpy(), rows.to_numpy())  # full network: other rows
    new = features.set_crops(new_csv).transform(pd.DataFrame(index=list(new_labels)))
    assert new.shape == (8, 512) and np.isfinite(new.to_numpy()).all()


def test_permuted_labels_give_chance_auc_from_cross_fitted_features(cohort):
    csv, labels, _, _ = cohort
    patients = list(labels)
    X, y = table(labels, patients)
    y_permuted = np.random.default_rng(1).permutation(y)
    options = FEATURE_OPTIONS
    features = DeepFeatures(crops=str(csv), options=options, keep_fold_models=True)
    rows = features.fit_transform(X, y_permuted)
    assert_cross_fitted(features, rows, patients, csv)
    assert abs(cv_auc(rows, y_permuted) - 0.5) < 0.25  # 36 patients: the null CV AUC spreads about +-0.1


def test_a_cnn_trained_on_permuted_labels_ranks_new_patients_at_chance(fitted, cohort, tmp_path):
    true, train = fitted
    csv, labels, _, _ = cohort
    X, y = table(labels, train)
    new_csv, new_labels = write_blob_crops(tmp_path, 40, slices=1, seed=9, prefix="Q")
    X_new, y_new = table(new_labels, list(new_labels))
    aucs = []
    for seed in range(3):  # labels independent of the truth: half of each true class called positive
        y_permuted = np.zeros_like(y)
        rng = np.random.default_rng(seed)
        for cls in (0, 1):
            members = rng.permutation(np.flatnonzero(y == cls))
            y_permuted[members[: len(members) // 2]] = 1
        model = CNNClassifier(crops=str(csv), options={**OPTIONS, "seed": seed}).fit(X, y_permuted)
        aucs.append(auc_score(y_new, model.set_crops(str(new_csv)).predict_proba(X_new)[:, 1]))
    true = pickle.loads(pickle.dumps(true)).set_crops(str(new_csv))
    assert auc_score(y_new, true.predict_proba(X_new)[:, 1]) > 0.8  # the same training finds the real signal
    assert abs(np.mean(aucs) - 0.5) < 0.2, aucs


def test_procrustes_alignment_recovers_a_rotation_within_the_rows_span():
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    source = rng.normal(size=(30, 5))
    alignment = procrustes_alignment(source, source @ rotation + 3.0)
    np.testing.assert_allclose(alignment.rotation, rotation, atol=1e-8)
    np.testing.assert_allclose(alignment.apply(source[:3]), source[:3] @ rotation + 3.0, atol=1e-8)
    few = rng.normal(size=(4, 5))  # fewer rows than dimensions: exact on them, 0 off their span
    alignment = procrustes_alignment(few, few @ rotation)
    np.testing.assert_allclose(alignment.apply(few), few @ rotation, atol=1e-8)
    assert np.linalg.matrix_rank(alignment.rotation) == 3  # centred rows span 3 dimensions


@pytest.fixture(scope="module")
def two_sequences(tmp_path_factory):
    """16-px crops with channels dce (noise only) and t2 (the blob), and a CNN trained on t2 alone."""
    folder = tmp_path_factory.mktemp("sequences")
    csv, labels = write_blob_crops(folder, 24, slices=1, channels=2, size=16, names=["dce", "t2"], noise=(0,))
    model = CNNClassifier(crops=str(csv), sequences=["t2"], options=TINY).fit(
        *table(labels, list(labels)[:16])
    )
    return csv, labels, model


def rewrite_channels(csv, folder, order: list[int], names: str):
    """The crops of ``csv`` rewritten into ``folder`` with their channels reordered and renamed."""
    folder.mkdir()
    frame = pd.read_csv(csv)
    for file in frame["path"]:
        np.save(folder / file, np.load(csv.parent / file)[order])
    frame.assign(channels=names).to_csv(folder / "crops.csv", index=False)
    return folder / "crops.csv"


def test_a_cnn_on_one_sequence_keeps_its_selection_after_pickling(two_sequences, tmp_path):
    csv, labels, model = two_sequences
    assert model.input_shape_ == (1, 16, 16) and model.channel_names_ == ["t2"]
    X, _ = table(labels, list(labels)[16:])
    expected = model.predict_proba(X)
    swapped = rewrite_channels(csv, tmp_path / "swapped", [1, 0], "t2|dce")  # same t2, other place
    restored = pickle.loads(pickle.dumps(model)).set_crops(swapped)
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    no_t2 = rewrite_channels(csv, tmp_path / "no_t2", [0, 1], "dce|dwi")
    with pytest.raises(
        AlnmInputError, match=r"no_t2/crops.csv: no channel of sequence\(s\) \['t2'\]; .*\['dce', 'dwi'\]"
    ):
        restored.set_crops(no_t2).predict_proba(X)
    renamed = rewrite_channels(csv, tmp_path / "renamed", [0, 1], "dce@0|t2@0")
    with pytest.raises(AlnmInputError, match=r"channels \['t2@0'\] but it was trained on \['t2'\]"):
        restored.set_crops(renamed).predict_proba(X)


def test_a_cnn_on_all_channels_refuses_crops_whose_channels_are_named_otherwise(two_sequences, tmp_path):
    csv, labels, _ = two_sequences
    X, y = table(labels, list(labels)[:16])
    model = CNNClassifier(crops=str(csv), options=TINY).fit(X, y)
    assert model.channel_names_ == ["dce", "t2"]
    swapped = rewrite_channels(csv, tmp_path / "swapped", [1, 0], "t2|dce")  # same shape, other order
    with pytest.raises(
        AlnmInputError, match=r"channels \['t2', 'dce'\] but it was trained on \['dce', 't2'\]"
    ):
        model.set_crops(swapped).predict_proba(X)
    unnamed = rewrite_channels(csv, tmp_path / "unnamed", [0, 1], "")  # no names: only the shape is checked
    assert model.set_crops(unnamed).predict_proba(X).shape == (16, 2)


def test_networks_of_other_channels_or_labels_never_resume_each_others_checkpoints(two_sequences, tmp_path):
    csv, labels, _ = two_sequences
    X, y = table(labels, list(labels)[:16])
    for sequences, labels_used in ((["t2"], y), (["dce"], y), (["t2"], 1 - y)):
        CNNClassifier(crops=str(csv), sequences=sequences, options=TINY, checkpoint_dir=str(tmp_path)).fit(
            X, labels_used
        )
    assert len(list(tmp_path.glob("run-*"))) == 3


def test_deep_features_read_the_selected_sequence(two_sequences):
    csv, labels, _ = two_sequences
    X, y = table(labels, list(labels)[:16])
    features = DeepFeatures(crops=str(csv), sequences=["t2"], options=TINY).fit(X, y)
    assert features.input_shape_ == (1, 16, 16) and features.transform(X).shape == (16, 512)
    with pytest.raises(AlnmInputError, match=r"no channel of sequence\(s\) \['adc'\]"):
        DeepFeatures(crops=str(csv), sequences=["adc"], options=TINY).fit(X, y)


def test_stacking_fuses_cnn_members(two_sequences):
    csv, labels, _ = two_sequences
    members = [(s, CNNClassifier(crops=str(csv), sequences=[s], options=TINY)) for s in ("dce", "t2")]
    X, y = table(labels, list(labels))
    stacking = StackingFusion(members, cv=2, random_state=0).fit(X, y)
    assert [m.input_shape_ for m in stacking.estimators_] == [(1, 16, 16), (1, 16, 16)]
    assert stacking.oof_predictions_.shape == (24, 2) and set(stacking.coefficients_) == {"dce", "t2"}
    assert stacking.predict_proba(X).shape == (24, 2)


def test_explain_gives_grad_cam_of_every_slice_with_its_probability(fitted, cohort):
    model, _ = fitted
    _, labels, _, _ = cohort
    explained = model.explain(["P030", "P031"])
    assert [c.patient for c in explained] == ["P030", "P031"]
    assert explained[0].cams.shape == (2, 32, 32) and explained[0].names == ["P030_0", "P030_1"]
    proba = model.predict_proba(pd.DataFrame(index=["P030", "P031"]))[:, 1]
    np.testing.assert_allclose(
        [c.probabilities.mean() for c in explained], proba, rtol=1e-5
    )  # mean aggregation
    with pytest.raises(AlnmInputError, match=r"1 patient\(s\) have no crops in .*: Z9"):
        model.explain(["Z9"])


def test_ensemble_averages_networks_that_differ_only_in_seed(cohort, tmp_path):
    csv, labels, new_csv, new_labels = cohort
    train = list(labels)[:24]
    X, y = table(labels, train)
    base = CNNClassifier(crops=str(csv), options={**TINY, "seed": 4})
    ensemble = CNNEnsemble(base, n_networks=2).fit(X, y)
    assert [m.options["seed"] for m in ensemble.estimators_] == [4, 5]
    singles = [CNNClassifier(crops=str(csv), options={**TINY, "seed": s}).fit(X, y) for s in (4, 5)]
    X_new, _ = table(new_labels, list(new_labels))
    restored = pickle.loads(pickle.dumps(ensemble)).set_crops(str(new_csv))
    expected = np.mean([m.set_crops(str(new_csv)).predict_proba(X_new) for m in singles], axis=0)
    np.testing.assert_allclose(restored.predict_proba(X_new), expected, atol=1e-6)
    assert not np.allclose(singles[0].predict_proba(X_new), singles[1].predict_proba(X_new))
    cams = ensemble.set_crops(str(new_csv)).explain(list(new_labels)[:2])
    member_cams = [m.explain([cams[0].patient])[0] for m in singles]
    np.testing.assert_allclose(cams[0].probabilities, np.mean([c.probabilities for c in member_cams], axis=0))
    with pytest.raises(AlnmInputError, match="n_networks"):
        CNNEnsemble(base, n_networks=0).fit(X, y)
