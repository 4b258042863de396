from pathlib import Path

import pytest

# Keys that `alnm evaluate` promises for every model x cohort in metrics.json (the CLI contract).
METRIC_CONTRACT_KEYS = (
    "n", "n_pos", "auc", "auc_ci", "threshold", "sensitivity", "specificity", "ppv", "npv",
    "accuracy", "f1", "brier", "calibration_intercept", "calibration_slope", "hosmer_lemeshow",
)  # fmt: skip


@pytest.fixture
def metric_contract_keys() -> tuple[str, ...]:
    return METRIC_CONTRACT_KEYS


SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_images():
    """`../shared/data/images` (real breast MRI samples); skips with a reason when absent."""
    path = SHARED / "data" / "images"
    if not path.is_dir():
        pytest.skip(f"real image samples not found at {path} (needs ../shared beside the repository)")
    return path
