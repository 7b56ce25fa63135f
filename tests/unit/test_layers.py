"""The processor's read-only overlay of a batch's rows on the stored ones reads as ChainMap does."""

from __future__ import annotations

from collections import ChainMap

from hypothesis import given
from hypothesis import strategies as st

from salespulse.processor.app import Layers

rows = st.dictionaries(st.sampled_from("abcdefgh"), st.dictionaries(st.just("o"), st.integers()), max_size=6)


@given(st.lists(rows, min_size=1, max_size=4), st.sampled_from("abcdefghz"))
def test_layers_read_like_a_chain_map(maps, key):
    layers, chain = Layers(*maps), ChainMap(*maps)
    assert layers.get(key) == chain.get(key)
    assert layers.get(key, "missing") == chain.get(key, "missing")
    assert (key in layers) == (key in chain)
    assert set(layers) == set(chain) and len(layers) == len(chain)
    assert dict(layers.items()) == dict(chain.items())
