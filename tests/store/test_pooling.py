"""The frame rule of probekit.store.pooling against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.errors import StoreError
from probekit.store.pooling import phone_frame_ranges, phone_means, utterance_mean

SHIFT = 0.02  # seconds


def _states():
    # 1 layer, 5 frames (the last is padding), 2 features: frame k = [k, 10 k].
    k = np.arange(5, dtype=np.float32)
    return np.stack([k, 10 * k], axis=-1)[None]  # (1, 5, 2)


def test_utterance_mean_ignores_padding():
    np.testing.assert_allclose(utterance_mean(_states(), 4), [[1.5, 15.0]])


def test_phones_hand_computed():
    # n = 4 valid frames: frame k covers [0.02 k, 0.02 (k + 1)); frames end at 0.08 s.
    phones = [
        ("a", 0.000, 0.030),  # overlaps frames 0, 1          -> mean k = 0.5
        ("b", 0.030, 0.030),  # zero length, centre 0.030 s: frame 1 contains it -> 1
        ("c", 0.040, 0.060),  # exactly frame 2 (0.06/0.02 is not 2.99..) -> 2
        ("d", 0.045, 0.050),  # shorter than a frame, inside frame 2 -> 2
        ("e", 0.035, 0.045),  # shorter than a frame, straddles frames 1, 2 -> 1.5
        ("f", 0.060, 0.095),  # frames 3, 4 but 4 is past the end: clipped -> 3
        ("g", 0.085, 0.095),  # starts after the last frame (within one frame): last -> 3
        ("h", 0.040, 0.040),  # zero length on a boundary: tie goes to the later frame -> 2
    ]
    first, stop = phone_frame_ranges([p[1] for p in phones], [p[2] for p in phones], SHIFT, 4)
    np.testing.assert_array_equal(first, [0, 1, 2, 2, 1, 3, 3, 2])
    np.testing.assert_array_equal(stop, [2, 2, 3, 3, 3, 4, 4, 3])
    means = phone_means(_states(), first, stop)  # (phones, layers, hidden)
    expected_k = np.array([0.5, 1, 2, 2, 1.5, 3, 3, 2])
    np.testing.assert_allclose(means[:, 0, 0], expected_k)
    np.testing.assert_allclose(means[:, 0, 1], 10 * expected_k)


def test_phone_past_the_end_names_utterance_and_phone():
    with pytest.raises(StoreError, match=r"utt7.*'z'.*0\.200"):
        phone_frame_ranges([0.0, 0.15], [0.1, 0.2], SHIFT, 4, utt_id="utt7", symbols=["y", "z"])
    # Within one frame after the last frame: clipped, not an error.
    phone_frame_ranges([0.09], [0.1], SHIFT, 4)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), data=st.data())
def test_ranges_always_nonempty_and_valid(n, data):
    limit = (n + 1) * SHIFT
    a = data.draw(st.floats(0, limit, allow_nan=False))
    b = data.draw(st.floats(a, limit, allow_nan=False))
    first, stop = phone_frame_ranges([a], [b], SHIFT, n)
    assert 0 <= first[0] < stop[0] <= n
    # Every frame in the range overlaps the phone, or the phone took its nearest frame.
    if b > a and a < n * SHIFT:
        assert first[0] * SHIFT < b + 1e-9 and stop[0] * SHIFT > a - 1e-9
