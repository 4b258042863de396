import numpy as np
import pandas as pd
import pytest

from alnm.errors import AlnmInputError
from alnm.evaluation.evaluate import EvaluationOptions, evaluate_predictions
from alnm.evaluation.predictions import PredictionColumns, check_predictions, read_table


def table(**changes):
    frame = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4"],
            "aln": [0, 1, 0, 1],
            "prob": [0.1, 0.8, 0.3, 0.6],
        }
    )
    for column, values in changes.items():
        frame[column] = values
    return frame


COLUMNS = PredictionColumns(label="aln", scores=["prob"], patient_id="patient_id")


def test_labels_outside_0_1_name_the_column_and_patients():
    with pytest.raises(AlnmInputError, match=r"'aln' must be 0 or 1.*P2 \(2.0\), P4 \(nan\)"):
        check_predictions(table(aln=[0, 2, 0, np.nan]), COLUMNS)


def test_missing_or_infinite_scores_name_the_patients():
    with pytest.raises(AlnmInputError, match=r"'prob'.*P1 \(nan\), P3 \(inf\)"):
        check_predictions(table(prob=[np.nan, 0.2, np.inf, 0.4]), COLUMNS)


def test_unknown_columns_are_listed_with_the_available_ones():
    columns = PredictionColumns(label="aln", scores=["prob", "rad_score"], cohort="centre")
    with pytest.raises(AlnmInputError, match=r"'rad_score', 'centre'; available: patient_id, aln, prob"):
        check_predictions(table(), columns)


def test_duplicated_patient_ids():
    with pytest.raises(AlnmInputError, match=r"duplicated patient IDs: P1"):
        check_predictions(table(patient_id=["P1", "P1", "P3", "P4"]), COLUMNS)


def test_without_an_id_column_patients_are_named_by_file_line():
    columns = PredictionColumns(label="aln", scores=["prob"])
    with pytest.raises(AlnmInputError, match=r"line 4 \(5\)"):
        check_predictions(table(aln=[0, 1, 5, 1]), columns)


def test_probabilities_required_but_outside_0_1():
    options = EvaluationOptions(score_type="probability", n_boot=0)
    with pytest.raises(AlnmInputError, match=r"probabilities in \[0, 1\].*P2 \(1.3\)"):
        evaluate_predictions(table(prob=[0.1, 1.3, 0.3, 0.6]), COLUMNS, options)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(AlnmInputError, match="missing.csv: file not found"):
        read_table(tmp_path / "missing.csv")
