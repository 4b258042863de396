import pytest
from study_fixtures import write_study


@pytest.fixture
def study_writer(tmp_path):
    """Write the synthetic study into this test's folder, optionally changed; returns the YAML path."""
    return lambda table=None, **changes: write_study(tmp_path, table, **changes)
