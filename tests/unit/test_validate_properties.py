"""Property: arbitrary messy frames never crash validate, and every row is accounted for."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carprice.data.rules import validate
from carprice.data.schema import CANONICAL_COLUMNS
from carprice.runtime.listing import FUELS, GEARS, OFFER_TYPES

messy_value = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "-/- (Fuel)", "Others", "1e308", "NaN", "60000", "Golf", "BMW"]),
    st.sampled_from(FUELS + GEARS + OFFER_TYPES),
)


@st.composite
def messy_frames(draw):
    columns = draw(st.lists(st.sampled_from(list(CANONICAL_COLUMNS) + ["junk"]), unique=True))
    n = draw(st.integers(min_value=0, max_value=25))
    data = {c: draw(st.lists(messy_value, min_size=n, max_size=n)) for c in columns}
    return pd.DataFrame(data, index=range(n), dtype=object)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_every_row_of_any_frame_ends_up_clean_or_quarantined_with_a_reason(rules, df):
    result = validate(df, rules)
    assert result.rows_in == len(df)
    assert len(result.clean) + len(result.quarantine) == len(df)
    assert result.quarantine["reasons"].str.len().gt(0).all()
    assert sorted(result.quarantine["row"]) == sorted(set(result.quarantine["row"]))
    assert list(result.clean.columns) == list(CANONICAL_COLUMNS)
