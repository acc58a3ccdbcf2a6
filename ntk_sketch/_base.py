"""The scikit-learn estimator protocol, without depending on scikit-learn.

Every estimator of the library (feature maps, sketches, learners) derives from ``BaseEstimator`` here, which gives
what scikit-learn's tools need to treat it as one of their own -- ``clone``, ``GridSearchCV``,
``Pipeline.set_params``, ``check_estimator`` -- by the same conventions, not by inheritance:

* ``__init__`` only stores its arguments, unchanged, as attributes of the same names; validation and every random
  draw happen in ``fit``.  ``get_params`` reads the parameter names from the ``__init__`` signature and
  ``set_params`` writes them back (``name__param`` reaches a nested estimator's parameter).
* ``fit`` sets the attributes that end in ``_`` (and ``n_features_in_``); ``check_is_fitted`` looks for them, and
  ``transform`` / ``predict`` before ``fit`` raise ``NotFittedError``, a subclass of both ``ValueError`` and
  ``AttributeError`` as scikit-learn's is.
* ``__sklearn_tags__`` describes the estimator to scikit-learn (transformer / classifier / regressor, sparse
  input, ...).  It imports scikit-learn lazily, only when scikit-learn itself asks for the tags.
"""
from __future__ import annotations

import inspect
import sys

import numpy as np

__all__ = [
    "BaseEstimator",
    "ClassifierMixin",
    "DataConversionWarning",
    "NotFittedError",
    "RegressorMixin",
    "TransformerMixin",
    "check_is_fitted",
]


class DataConversionWarning(UserWarning):
    """Warns that input was converted to the expected form, e.g. a column vector of labels (n, 1) flattened."""


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted estimator (``transform``, ``predict``, ...) is called before ``fit``.

    A subclass of ``ValueError`` and ``AttributeError``, like ``sklearn.exceptions.NotFittedError``, so code that
    catches either keeps working.
    """


def _is_fitted(estimator, attributes=None):
    if attributes is not None:
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        return all(hasattr(estimator, name) for name in names)
    return any(name.endswith("_") and not name.startswith("__") for name in vars(estimator))


_SKLEARN_TWINS = {}


def _sklearn_twin(ours, name):
    """``ours``, or when scikit-learn is already imported a subclass of ``ours`` and of
    ``sklearn.exceptions.<name>``, so that code written for either class (``except``, warning filters) sees it.

    scikit-learn's tools and checks catch their own ``NotFittedError`` and filter their own
    ``DataConversionWarning``.  scikit-learn is never imported here, only looked up in ``sys.modules``.
    """
    theirs = getattr(sys.modules.get("sklearn.exceptions"), name, None)
    if not isinstance(theirs, type) or not issubclass(theirs, Warning if issubclass(ours, Warning) else Exception):
        return ours
    key = (ours, theirs)
    if key not in _SKLEARN_TWINS:
        _SKLEARN_TWINS[key] = type(name, (ours, theirs), {
            "__module__": __name__,
            "__doc__": f"``{name}`` that is also scikit-learn's (used when scikit-learn is imported).",
            # picklable, e.g. raised in a worker process: rebuilt as the twin of the receiving process
            "__reduce__": lambda self: (_make_twin, (ours.__name__, name, self.args)),
        })
    return _SKLEARN_TWINS[key]


def _make_twin(ours_name, name, args):
    return _sklearn_twin(globals()[ours_name], name)(*args)


def check_is_fitted(estimator, attributes=None, msg=None):
    """Raise ``NotFittedError`` unless ``estimator`` has been fitted.

    Parameters
    ----------
    estimator : object
    attributes : str or list of str, optional
        Attributes that ``fit`` sets; all must be present.  Default: any attribute whose name ends in ``_``.
    msg : str, optional
        The error message; ``{name}`` is replaced by the estimator's class name.
    """
    if not _is_fitted(estimator, attributes):
        name = type(estimator).__name__
        if msg is None:
            msg = "This {name} instance is not fitted yet: call fit with appropriate arguments before using it."
        raise _sklearn_twin(NotFittedError, "NotFittedError")(msg.format(name=name))


def _same_value(a, b):
    """Whether a parameter value equals its default, for ``__repr__`` (never raises, arrays count as changed)."""
    if a is b:
        return True
    if type(a) is not type(b) or isinstance(a, np.ndarray):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


class BaseEstimator:
    """``get_params`` / ``set_params`` / ``__repr__`` from the ``__init__`` signature, and scikit-learn's tags.

    Subclasses store every ``__init__`` argument unchanged under its own name and validate nothing there.
    Class attributes read by ``__sklearn_tags__``: ``_accept_sparse`` (bool), ``_two_d_input`` (False for
    estimators that take images or pairs of arrays), ``_preserves_float32`` (transformers whose output keeps
    float32 input as float32), ``_multi_output`` (regressors that take 2-d targets).
    """

    _accept_sparse = False
    _two_d_input = True
    _preserves_float32 = False
    _multi_output = False

    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__}.__init__ must not take *args: every parameter needs a name.")
        return sorted(p.name for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """The ``__init__`` parameters as a dict; with ``deep``, also ``name__param`` of nested estimators."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for key, sub in value.get_params(deep=True).items():
                    out[f"{name}__{key}"] = sub
            out[name] = value
        return out

    def set_params(self, **params):
        """Set ``__init__`` parameters (``name__param`` for a nested estimator's); returns ``self``.

        The new values are checked by the next ``fit``, not here.
        """
        if not params:
            return self
        valid = self._get_param_names()
        nested = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. Valid parameters are: {valid!r}."
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            target = getattr(self, name)
            if not hasattr(target, "set_params"):
                raise ValueError(
                    f"parameter {name!r} of {type(self).__name__} is not an estimator; cannot set {sub_params}."
                )
            target.set_params(**sub_params)
        return self

    def __repr__(self):
        try:
            defaults = {
                p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
                if p.default is not p.empty
            }
            parts = []
            for name in self._get_param_names():
                value = getattr(self, name, None)
                if name in defaults and _same_value(value, defaults[name]):
                    continue
                text = repr(value)
                if len(text) > 60:
                    text = text[:57] + "..."
                parts.append(f"{name}={text}")
            return f"{type(self).__name__}({', '.join(parts)})"
        except Exception:   # a repr must never fail, e.g. on a half-built object
            return object.__repr__(self)

    def __sklearn_is_fitted__(self):
        return _is_fitted(self)

    def _estimator_kind(self):
        return None

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here never makes it a dependency.
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags, TransformerTags

        kind = self._estimator_kind()
        supervised = kind in ("classifier", "regressor")
        tags = Tags(
            estimator_type=kind if supervised else None,
            target_tags=TargetTags(required=supervised, multi_output=self._multi_output, single_output=True),
            input_tags=InputTags(two_d_array=self._two_d_input, sparse=self._accept_sparse),
        )
        if kind == "transformer":
            tags.transformer_tags = TransformerTags(
                preserves_dtype=["float64", "float32"] if self._preserves_float32 else ["float64"]
            )
        elif kind == "classifier":
            tags.classifier_tags = ClassifierTags()
        elif kind == "regressor":
            tags.regressor_tags = RegressorTags()
        return tags


class TransformerMixin:
    """``fit_transform`` for estimators with ``fit`` and ``transform``."""

    def _estimator_kind(self):
        return "transformer"

    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X, y)`` then ``transform(X)``."""
        return self.fit(X, y, **fit_params).transform(X)


class ClassifierMixin:
    """Marks a classifier (``_estimator_type``, tags); ``score`` is the accuracy."""

    _estimator_type = "classifier"

    def _estimator_kind(self):
        return "classifier"


class RegressorMixin:
    """Marks a regressor (``_estimator_type``, tags); ``score`` is R^2."""

    _estimator_type = "regressor"

    def _estimator_kind(self):
        return "regressor"
