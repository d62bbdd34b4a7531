"""Matrix products, compute only: ``matmul``, ``dense`` (TOPI's X·Wᵀ with an optional bias
and activation fused into the same stage), ``batch_matmul``; and the packed layout the GEMM
schedules use: ``pack_panels`` (B cut into panels of ``nb`` columns) and ``matmul_packed``
(the same product reading the panels), equal to ``matmul`` / ``dense`` / ``batch_matmul``."""

from __future__ import annotations

from ... import te
from ...errors import TensorlangValueError
from .elemwise import ACTIVATIONS



def _shape(t) -> tuple:
    return tuple(int(getattr(d, "value", d)) for d in t.shape)


def _need(op, cond, msg):
    if not cond:
        raise TensorlangValueError(f"{op}: {msg}")


def apply_activation(x, kind: str | None, op: str = "activation"):
    """``kind`` (a name of ``elemwise.ACTIVATIONS``) applied to the scalar expression ``x``
    (None: x itself)."""
    if kind is None:
        return x
    if kind not in ACTIVATIONS:
        raise TensorlangValueError(f"{op}: activation must be None or one of "
                                   f"{list(ACTIVATIONS)}, got {kind!r}")
    return ACTIVATIONS[kind](x)


def matmul(A, B, name: str = "C"):
    """C[i, j] = sum_k A[i, k] * B[k, j]."""
    (m, k), (k2, n) = _shape(A), _shape(B)
    _need("matmul", k == k2, f"A is {m}x{k} but B is {k2}x{n}: inner sizes differ")
    r = te.reduce_axis((0, k), name="k")
    return te.compute((m, n), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name=name)


def dense(X, W, bias=None, activation=None, name: str = "Y"):
    """Y[i, j] = act(sum_k X[i, k] * W[j, k] + bias[j]) (TOPI's dense: W is (units, in)).
    With a bias or an activation the result is an epilogue stage over the sum's stage; a
    schedule computes the sum at the epilogue's tile (as ``ops.matmul``'s write cache), so
    the epilogue runs in the same loop nest, not as a second pass over memory."""
    kind = activation
    if len(_shape(X)) != 2 or len(_shape(W)) != 2:
        raise TensorlangValueError(f"dense: X and W must be 2-D, got {_shape(X)} and {_shape(W)}")
    (m, k), (n, k2) = _shape(X), _shape(W)
    _need("dense", k == k2, f"X has {k} input features but W has {k2} (W is (units, in_features))")
    if bias is not None:
        _need("dense", _shape(bias) == (n,), f"bias must have shape ({n},), got {_shape(bias)}")
    apply_activation(te.const(0.0, X.dtype), kind, "dense")      # validates the name
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(X[i, r] * W[j, r], axis=r), name=name + "_acc")
    if bias is None and kind is None:
        return acc
    return te.compute((m, n), lambda i, j: apply_activation(
        acc[i, j] + bias[j] if bias is not None else acc[i, j], kind, "dense"), name=name)


def batch_matmul(A, B, transpose_b: bool = False, name: str = "C"):
    """C[b] = A[b] · B[b] (numpy's convention), or A[b] · B[b]ᵀ with ``transpose_b`` (TOPI's)."""
    sa, sb = _shape(A), _shape(B)
    _need("batch_matmul", len(sa) == 3 and len(sb) == 3, f"A and B must be 3-D, got {sa} and {sb}")
    b, m, k = sa
    b2, k2, n = (sb[0], sb[2], sb[1]) if transpose_b else sb
    _need("batch_matmul", b == b2, f"batch sizes differ: {b} and {b2}")
    _need("batch_matmul", k == k2, f"inner sizes differ: A is ...x{m}x{k}, B gives {k2}")
    r = te.reduce_axis((0, k), name="k")
    if transpose_b:
        return te.compute((b, m, n), lambda x, i, j: te.sum(A[x, i, r] * B[x, j, r], axis=r), name=name)
    return te.compute((b, m, n), lambda x, i, j: te.sum(A[x, i, r] * B[x, r, j], axis=r), name=name)


def pack_panels(B, nb: int, transpose_b: bool = False, name: str = "packedB"):
    """B (``[batch..., ]K, N``; ``N, K`` with ``transpose_b``) cut into panels of ``nb``
    columns: ``P[..., n // nb, k, n % nb] = B[..., k, n]``, the last panel padded with zeros.
    A GEMM micro-kernel then reads ``nb`` contiguous columns of B per reduction step."""
    sb = _shape(B)
    *batch, k, n = sb
    if transpose_b:
        n, k = k, n
    _need("pack_panels", isinstance(nb, int) and nb > 0, f"nb must be a positive int, got {nb!r}")
    nbat = len(batch)

    def at(bi, kk, nn):
        return B[(*bi, nn, kk)] if transpose_b else B[(*bi, kk, nn)]

    def body(*i):
        bi, p, kk, j = i[:nbat], i[nbat], i[nbat + 1], i[nbat + 2]
        v = at(bi, kk, p * nb + j)
        return v if n % nb == 0 else te.if_then_else(p * nb + j < n, v, te.const(0, B.dtype))
    return te.compute((*batch, -(-n // nb), k, nb), body, name=name, tag="pack_panels")


def matmul_packed(A, P, n: int, name: str = "C"):
    """C[..., i, j] = sum_k A[..., i, k] * P[..., j // nb, k, j % nb] for ``P`` from
    ``pack_panels`` (``n``: the columns of C; the panel padding is never read)."""
    *batch, m, k = _shape(A)
    *pbatch, npanel, k2, nb = _shape(P)
    _need("matmul_packed", k == k2 and pbatch == batch and npanel * nb >= n,
          f"A {_shape(A)} and panels {_shape(P)} do not make a product with {n} columns")
    r = te.reduce_axis((0, k), name="k")
    nbat = len(batch)
    return te.compute((*batch, m, n), lambda *i: te.sum(
        A[(*i[:nbat], i[nbat], r)] * P[(*i[:nbat], i[nbat + 1] // nb, r, i[nbat + 1] % nb)],
        axis=r), name=name, tag="matmul")
