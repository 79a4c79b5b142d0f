"""Common spatial patterns (Ramoser et al. 1998; Blankertz et al. 2008), binary and
one-versus-rest, in numpy, with the same computation as ONNX nodes.

CSP finds spatial filters whose output variance differs most between classes. Two
classes: the generalized eigenvectors of the class covariances ``(C_a, C_a + C_b)``;
the largest eigenvalues give filters with high variance for the first class, the
smallest for the second. More classes, one-versus-rest: the same for each class ``k``
against the pooled rest, keeping the filters whose variance ratio ``λ/(1−λ)`` is
furthest from 1 on either side (power rising or falling in class ``k``).

Features (``transform_into="log_var"``) are log *relative* variances,
``log(var_j / Σ_i var_i)`` over all filters of one projection, as in Ramoser et al.
and MNE's older ``CSP(log=True)``: invariant to the overall gain of the window, so a
change of electrode impedance or amplifier units does not shift them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bci.decoders.base import check_windows
from onnx import TensorProto, helper, numpy_helper
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin

#: Added to every filtered variance: a flat window (the runtime zeroes non-finite
#: samples) then gives equal features instead of log(0/0) = NaN. Far below the variance
#: of any real signal in volts (1 µV² = 1e-12 V²), and representable in float32.
VAR_FLOOR = 1e-30

TRANSFORMS = ("log_var", "csp_space")


def shrink(cov: np.ndarray, reg: float | None) -> np.ndarray:
    """Fixed shrinkage toward the trace-scaled identity: ``(1−r)·C + r·tr(C)/n·I``."""
    if reg is None or reg == 0:
        return cov
    n = cov.shape[0]
    return (1.0 - reg) * cov + reg * np.trace(cov) / n * np.eye(n)


def trial_covariances(X: np.ndarray) -> np.ndarray:
    """Per-window spatial covariances of the time-centred windows, scaled to unit trace.

    Trace scaling keeps one loud window (an artifact, a gain change) from dominating
    the class average.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_channels, n_times)

    Returns
    -------
    covs : ndarray, shape (n_windows, n_channels, n_channels)
    """
    Xc = X - X.mean(axis=-1, keepdims=True)
    covs = np.einsum("nct,ndt->ncd", Xc, Xc)
    traces = np.trace(covs, axis1=1, axis2=2)
    if np.any(traces <= 0):
        raise ValueError(f"CSP: expected windows with signal, found "
                         f"{int(np.sum(traces <= 0))} flat window(s)")
    return covs / traces[:, None, None]


def log_relative_variance(z: np.ndarray) -> np.ndarray:
    """``log((var_j + floor) / Σ_i (var_i + floor))`` over the filter axis.

    Parameters
    ----------
    z : ndarray, shape (..., n_filters, n_times)
        Spatially filtered windows.

    Returns
    -------
    features : ndarray, shape (..., n_filters)
    """
    var = z.var(axis=-1) + VAR_FLOOR
    return np.log(var / var.sum(axis=-1, keepdims=True))


def _generalized_eig(ca: np.ndarray, cb: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues λ ∈ [0, 1] (ascending) and filters (rows) of ``C_a w = λ (C_a + C_b) w``."""
    singular = ValueError(
        f"CSP: the covariance of {what} is singular (rank-deficient windows, e.g. an "
        f"average reference or fewer samples than channels); set reg, e.g. reg=0.05"
    )
    # a rank-deficient sum may still pass Cholesky on round-off and return filters that
    # amplify the null space by ~1e8, so test the conditioning explicitly
    spectrum = np.linalg.eigvalsh(ca + cb)
    if spectrum[0] <= 1e-10 * spectrum[-1]:
        raise singular
    try:
        evals, evecs = linalg.eigh(ca, ca + cb)
    except linalg.LinAlgError:
        raise singular from None
    return evals, evecs.T


class CSP(TransformerMixin, BaseEstimator):
    """Common spatial patterns.

    Parameters
    ----------
    n_components : int
        Two classes: the number of filters, ``ceil(n/2)`` from the top of the eigenvalue
        spectrum (high variance for ``classes_[0]``) and ``floor(n/2)`` from the bottom.
        More classes: filters per class (one-versus-rest), so ``n_classes·n_components``
        in all.
    multiclass : str
        ``"ovr"`` (one-versus-rest), the only scheme; used with three classes or more.
    transform_into : str
        ``"log_var"``: log relative variance of each filtered window, shape
        (n_windows, n_filters). ``"csp_space"``: the filtered windows themselves, shape
        (n_windows, n_filters, n_times).
    reg : float | None
        Shrinkage ``r ∈ [0, 1]`` of each class covariance toward ``tr(C)/n·I``; needed
        when the windows are rank-deficient (average reference, ICA cleaning).

    Attributes
    ----------
    filters_ : ndarray, shape (n_filters, n_channels)
        Spatial filters as rows; ``filters_ @ window`` gives the CSP signals. Two
        classes: ordered from most ``classes_[0]``-dominant to most ``classes_[1]``-
        dominant. More classes: ``n_components`` rows per class, in ``classes_`` order,
        each block ordered by decreasing discriminability.
    patterns_ : ndarray, shape (n_filters, n_channels)
        Activation patterns (Haufe et al. 2014): the scalp map of each filter's source,
        the matching column of the inverse of the full filter matrix of its CSP problem
        (the binary problem, or class ``k`` versus rest).
    eigenvalues_ : ndarray, shape (n_filters,)
        λ of each kept filter: its class (two classes: ``classes_[0]``) share of variance.
    classes_ : ndarray, shape (n_classes,)
    """

    def __init__(
        self, n_components: int = 4, *, multiclass: str = "ovr",
        transform_into: str = "log_var", reg: float | None = None,
    ) -> None:
        self.n_components = n_components
        self.multiclass = multiclass
        self.transform_into = transform_into
        self.reg = reg

    def _check_params(self, n_channels: int) -> None:
        if not isinstance(self.n_components, int | np.integer) or not (
            1 <= self.n_components <= n_channels
        ):
            raise ValueError(f"CSP: n_components must be an integer from 1 to the number of "
                             f"channels ({n_channels}), found {self.n_components!r}")
        if self.multiclass != "ovr":
            raise ValueError(f"CSP: multiclass must be 'ovr', found {self.multiclass!r}")
        if self.transform_into not in TRANSFORMS:
            raise ValueError(f"CSP: transform_into must be one of {TRANSFORMS}, found "
                             f"{self.transform_into!r}")
        if self.reg is not None and not 0.0 <= float(self.reg) <= 1.0:
            raise ValueError(f"CSP: reg must be None or in [0, 1], found {self.reg!r}")

    def fit(self, X: np.ndarray, y: np.ndarray) -> CSP:
        """Learn the spatial filters.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)
        y : ndarray, shape (n_windows,)
            Class labels; at least two distinct.
        """
        X = check_windows(X, who="CSP").astype(np.float64)
        y = check_labels(y, X.shape[0], who="CSP")
        self._check_params(X.shape[1])
        self.classes_ = np.unique(y)
        covs = trial_covariances(X)
        n = self.n_components
        if self.classes_.size == 2:
            ca = shrink(covs[y == self.classes_[0]].mean(axis=0), self.reg)
            cb = shrink(covs[y == self.classes_[1]].mean(axis=0), self.reg)
            evals, evecs = _generalized_eig(ca, cb, "the classes")
            # ascending eigenvalues: the top (n+1)//2 first, then the bottom n//2
            keep = np.r_[np.arange(evals.size - 1, evals.size - 1 - (n + 1) // 2, -1),
                         np.arange(n // 2)[::-1]]
            problems = [(evals, evecs, keep)]
        else:
            problems = []
            for k in self.classes_:
                ck = shrink(covs[y == k].mean(axis=0), self.reg)
                cr = shrink(covs[y != k].mean(axis=0), self.reg)
                evals, evecs = _generalized_eig(ck, cr, f"class {k!r} or its rest")
                # |λ − ½| ranks by |log(var_k / var_rest)|, both directions alike
                problems.append((evals, evecs, np.argsort(-np.abs(evals - 0.5),
                                                          kind="stable")[:n]))
        self.filters_ = np.concatenate([v[keep] for _, v, keep in problems])
        self.eigenvalues_ = np.concatenate([e[keep] for e, _, keep in problems])
        # the columns of inv(V) map each problem's sources back to the channels; taken per
        # problem because the one-versus-rest filters together outnumber the channels
        self.patterns_ = np.concatenate([np.linalg.inv(v).T[keep] for _, v, keep in problems])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Filter windows, and reduce them to log relative variances for ``"log_var"``.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_channels, n_times)

        Returns
        -------
        out : ndarray, shape (n_windows, n_filters) or (n_windows, n_filters, n_times)
            float64 for ``"log_var"``; the input's float dtype for ``"csp_space"``.
        """
        X = check_windows(X, who="CSP")
        n_channels = self.filters_.shape[1]
        if X.shape[1] != n_channels:
            raise ValueError(f"CSP: fitted on windows of {n_channels} channels, found "
                             f"{X.shape[1]} (shape {X.shape})")
        z = np.matmul(self.filters_, X.astype(np.float64))
        if self.transform_into == "csp_space":
            return z.astype(X.dtype, copy=False)
        return log_relative_variance(z)


def check_labels(y: Any, n_windows: int, *, who: str) -> np.ndarray:
    """One label per window and at least two classes."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_windows:
        raise ValueError(f"{who}: expected one label per window, shape ({n_windows},), "
                         f"found {y.shape}")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"{who}: expected at least 2 classes, found {classes.size} "
                         f"({classes.tolist()})")
    return y


def append_csp(
    nodes: list[Any], inits: list[Any], filters: np.ndarray, *, x: str = "x",
    prefix: str = "csp", transform_into: str = "log_var", dtype: type = np.float32,
) -> str:
    """Append the CSP projection (and log relative variance) to an ONNX graph.

    ``MatMul(filters, x)`` broadcasts over the leading axes, so one call serves plain
    windows and filter banks (one filter set per band). The result equals
    :meth:`CSP.transform` up to the round-off of ``dtype``.

    Parameters
    ----------
    nodes, inits : list
        The graph's nodes and initializers (``TensorProto``); appended to in place.
    filters : ndarray, shape (n_filters, n_channels) or (n_bands, n_filters, n_channels)
    x : str
        Name of the float32 input tensor, shape (batch, n_channels, n_times) or (batch,
        n_bands, n_channels, n_times).
    prefix : str
        Prefix of every new tensor name, unique within the graph.
    transform_into : str
        ``"csp_space"``: output (batch, [n_bands,] n_filters, n_times); ``"log_var"``:
        output (batch, [n_bands,] n_filters).
    dtype : numpy float type
        Arithmetic and output type. ``np.float64`` casts ``x`` first: a classifier on top
        (LDA weights of log variances) can magnify float32 round-off to ~1e-4 in the
        probabilities.

    Returns
    -------
    name : str
        Name of the output tensor.
    """
    if transform_into not in TRANSFORMS:
        raise ValueError(f"transform_into must be one of {TRANSFORMS}, found {transform_into!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, found {dtype}")
    p = prefix
    if dtype == np.float64:
        nodes.append(helper.make_node("Cast", [x], [f"{p}_x64"], to=TensorProto.DOUBLE))
        x = f"{p}_x64"
    inits.append(numpy_helper.from_array(np.asarray(filters, dtype), f"{p}_filters"))
    nodes.append(helper.make_node("MatMul", [f"{p}_filters", x], [f"{p}_z"]))
    if transform_into == "csp_space":
        return f"{p}_z"
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), f"{p}_last_axis"))
    inits.append(numpy_helper.from_array(np.array(VAR_FLOOR, dtype), f"{p}_floor"))
    nodes += [
        # opset 17: ReduceMean takes axes as an attribute, ReduceSum as an input
        helper.make_node("ReduceMean", [f"{p}_z"], [f"{p}_mean"], axes=[-1], keepdims=1),
        helper.make_node("Sub", [f"{p}_z", f"{p}_mean"], [f"{p}_zc"]),
        helper.make_node("Mul", [f"{p}_zc", f"{p}_zc"], [f"{p}_sq"]),
        helper.make_node("ReduceMean", [f"{p}_sq"], [f"{p}_var0"], axes=[-1], keepdims=0),
        helper.make_node("Add", [f"{p}_var0", f"{p}_floor"], [f"{p}_var"]),
        helper.make_node("ReduceSum", [f"{p}_var", f"{p}_last_axis"], [f"{p}_total"],
                         keepdims=1),
        helper.make_node("Div", [f"{p}_var", f"{p}_total"], [f"{p}_rel"]),
        helper.make_node("Log", [f"{p}_rel"], [f"{p}_logvar"]),
    ]
    return f"{p}_logvar"
