"""``tl.testing``: TVM's test helpers, for ported tutorials."""

import numpy as np


def assert_allclose(actual, desired, rtol=1e-7, atol=0):
    """numpy's ``assert_allclose`` (accepts tl.nd arrays)."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol, verbose=True)
