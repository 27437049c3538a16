"""A model of "will this lead be won (or accepted)?": trained on feature rows
(:mod:`baton.learn.features`), scored as a probability, explained by the features that
moved that probability most, and saved as bytes with a checksum.

Kinds:

- ``gradient_boosting``: scikit-learn's histogram gradient boosting, the strongest
  on tabular data of this size;
- ``logistic_regression``: a plain, readable baseline (and the source of the
  suggested contract's weights);
- ``naive_bayes``: the frequency model common CRMs ship ("predictive scoring"), kept
  as the reference the others must beat.

A caller may rely on: the same rows give the same probabilities after a save and a
load; :func:`train` refuses (:class:`NotEnoughOutcomes`) a history too small or with
one class only, rather than returning a model that scores everyone the same.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import pickle
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from baton.learn.features import FeatureRow, FeatureSpec, FeatureValue, feature_label

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

ModelKind = Literal["gradient_boosting", "logistic_regression", "naive_bayes"]
MODEL_KINDS: tuple[ModelKind, ...] = ("gradient_boosting", "logistic_regression", "naive_bayes")

MIN_OUTCOMES = 20
"""Fewest examples of each class (positive and negative) a model is trained on."""

FORMAT = "baton-lead-model/1"


class NotEnoughOutcomes(ValueError):
    """The history cannot teach a model: too few examples, or one class only. The
    message says what is missing."""


class ModelFileError(ValueError):
    """Saved bytes that are not a model this version of Baton wrote (or were changed)."""


@dataclass(frozen=True)
class Reason:
    """One feature's part in a lead's probability: ``effect`` is how much the
    probability drops (positive) or rises (negative) without it."""

    feature: str
    value: FeatureValue
    label: str
    effect: float


@dataclass(frozen=True)
class Evaluation:
    """How well a model ranks and how honest its probabilities are, on rows it was not
    trained on. ``calibration``: per band of predicted probability, ``(mean predicted,
    observed share, rows)``."""

    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    brier: float
    base_rate: float
    calibration: tuple[tuple[float, float, int], ...] = ()
    warnings: tuple[str, ...] = ()
    """What a reader must know before trusting the figures (a suspiciously good ROC
    AUC, see :func:`baton.services.models.train_model`)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "brier": self.brier,
            "base_rate": self.base_rate,
            "calibration": [list(b) for b in self.calibration],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            rows=int(data["rows"]),
            positives=int(data["positives"]),
            roc_auc=float(data["roc_auc"]),
            pr_auc=float(data["pr_auc"]),
            brier=float(data["brier"]),
            base_rate=float(data["base_rate"]),
            calibration=tuple(
                (float(a), float(b), int(c)) for a, b, c in data.get("calibration", ())
            ),
            warnings=tuple(str(w) for w in data.get("warnings", ())),
        )


@dataclass
class LeadModel:
    """A trained model with the feature spec it needs; see the module docstring."""

    kind: ModelKind
    spec: FeatureSpec
    pipeline: Pipeline
    numeric_attributes: tuple[str, ...] = ()
    baseline: dict[str, FeatureValue] = field(default_factory=dict)

    def probabilities(self, rows: Sequence[FeatureRow]) -> list[float]:
        """The probability of the positive outcome for each row (0..1), computed on one
        thread (see :func:`one_thread`)."""
        if not rows:
            return []
        with one_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = self.pipeline.predict_proba(list(rows))[:, 1]
        return [float(p) for p in found]

    def probability(self, row: FeatureRow) -> float:
        return self.probabilities([row])[0]

    def reasons(self, row: FeatureRow, *, top: int = 3) -> list[Reason]:
        """The ``top`` features that moved this row's probability most, by leaving each
        out in turn (works for every kind, and says it in probability, not in a
        model's internal units)."""
        names = sorted(row)
        if not names:
            return []
        variants = [row] + [{k: v for k, v in row.items() if k != name} for name in names]
        found = self.probabilities(variants)
        whole = found[0]
        effects = [
            Reason(name, row[name], feature_label(name, row[name]), round(whole - p, 4))
            for name, p in zip(names, found[1:], strict=True)
        ]
        effects.sort(key=lambda r: (-abs(r.effect), r.feature))
        return [r for r in effects[:top] if r.effect != 0]

    def weights(self) -> dict[str, float]:
        """A logistic regression's coefficient per one-hot feature (``name=value`` for
        categories), in log-odds per unit of the scaled feature; empty for other kinds."""
        if self.kind != "logistic_regression":
            return {}
        vectorizer = self.pipeline.named_steps["vectorize"]
        scaler = self.pipeline.named_steps["scale"]
        estimator = self.pipeline.named_steps["estimate"]
        scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
        coefficients = estimator.coef_[0] / scale
        return {
            str(name): float(c)
            for name, c in zip(vectorizer.get_feature_names_out(), coefficients, strict=True)
        }

    def to_bytes(self) -> bytes:
        """The model as bytes (pickle, prefixed with the format name)."""
        buffer = io.BytesIO()
        buffer.write(FORMAT.encode() + b"\n")
        pickle.dump(
            {
                "kind": self.kind,
                "spec": self.spec.to_json(),
                "pipeline": self.pipeline,
                "numeric_attributes": list(self.numeric_attributes),
                "baseline": self.baseline,
            },
            buffer,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, sha256: str) -> LeadModel:
        """Load bytes made by :meth:`to_bytes`. ``sha256`` (stored beside the bytes
        when they were saved) is required: bytes that were changed since are refused
        before they are unpickled, so a model is loaded only as Baton wrote it. Never
        call this on bytes from a user: unpickling runs code."""
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
            raise ModelFileError("the model's bytes do not match their checksum")
        head, _, body = data.partition(b"\n")
        if head != FORMAT.encode():
            raise ModelFileError("not a Baton lead model")
        loaded = pickle.loads(body)  # noqa: S301 - checksum-verified bytes Baton wrote
        return cls(
            kind=loaded["kind"],
            spec=FeatureSpec.from_json(loaded["spec"]),
            pipeline=loaded["pipeline"],
            numeric_attributes=tuple(loaded["numeric_attributes"]),
            baseline=dict(loaded["baseline"]),
        )


_CONTROLLER: list[Any] = []


def import_libraries() -> None:
    """Import scikit-learn's parts that training and scoring use, now rather than at
    their first use: a server or worker whose active contract scores with a model calls
    this before it freezes its start-up heap, so the first score does not import them
    inside its write transaction (about 1 s of CPU) and they are frozen with the rest.
    Idempotent; other processes never pay for them."""
    import sklearn.ensemble
    import sklearn.feature_extraction
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.naive_bayes
    import sklearn.pipeline
    import sklearn.preprocessing  # noqa: F401


def one_thread() -> AbstractContextManager[Any]:
    """Predicting on one OpenMP thread: a gradient boosting model's thread pool costs
    far more than the prediction itself on a machine that also serves requests, runs the
    worker and the database (measured on 2 busy cores: one lead 40 ms median and 350+ ms
    p95 with the pool, 2 ms on one thread; a 2,000-lead chunk 0.2-1.1 s against 0.1 s).
    Training too: a gradient boosting fit on 70,000 rows took 7 s on one thread and 61 s
    on two busy cores."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        import_libraries()  # the controller sees only the thread pools loaded before it
        _CONTROLLER.append(ThreadpoolController())
    return cast(AbstractContextManager[Any], _CONTROLLER[0].limit(limits=1))


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _estimator(kind: ModelKind, *, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import BernoulliNB

    if kind == "gradient_boosting":
        # Shallow trees (depth 4), 200 rounds: on X Education's held-out 30 % they rank
        # better than 300 rounds of 31-leaf trees (0.904 against 0.900 ROC AUC with Last
        # Activity, 0.877 against 0.871 without; bench/evaluate.py) in under half the time.
        return HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.05,
            max_depth=4,
            min_samples_leaf=20,
            early_stopping=False,
            random_state=seed,
        )
    if kind == "logistic_regression":
        return LogisticRegression(C=1.0, max_iter=2000)
    if kind == "naive_bayes":
        return BernoulliNB(alpha=1.0, binarize=0.0)
    raise ValueError(f"unknown model kind '{kind}' (one of {', '.join(MODEL_KINDS)})")


def check_outcomes(labels: Sequence[int], *, what: str = "outcomes") -> None:
    """Refuse a history that cannot teach: fewer than :data:`MIN_OUTCOMES` of either
    class. The message says how many of each there are."""
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if not labels:
        raise NotEnoughOutcomes(f"no {what} to learn from: the history is empty")
    if positives == 0:
        raise NotEnoughOutcomes(
            f"no positive {what} in {len(labels)} rows: nothing was won (or accepted) yet"
        )
    if negatives == 0:
        raise NotEnoughOutcomes(f"no negative {what} in {len(labels)} rows: every one was won")
    if min(positives, negatives) < MIN_OUTCOMES:
        raise NotEnoughOutcomes(
            f"too few {what}: {positives} positive and {negatives} negative; a model needs "
            f"at least {MIN_OUTCOMES} of each"
        )


def train(
    kind: ModelKind,
    spec: FeatureSpec,
    rows: Sequence[FeatureRow],
    labels: Sequence[int],
    *,
    numeric_attributes: Sequence[str] = (),
    seed: int = 7,
) -> LeadModel:
    """Fit a model of ``kind`` on ``rows`` and their 0/1 ``labels``."""
    if len(rows) != len(labels):
        raise ValueError("rows and labels differ in length")
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler

    check_outcomes(labels)
    estimator = _estimator(kind, seed=seed)
    sparse = kind != "gradient_boosting"
    steps: list[tuple[str, Any]] = [("vectorize", DictVectorizer(sparse=sparse))]
    if kind == "logistic_regression":
        steps.append(("scale", MaxAbsScaler()))
    steps.append(("estimate", estimator))
    pipeline = Pipeline(steps)
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(list(rows), np.asarray(labels, dtype=int))
    return LeadModel(kind, spec, pipeline, tuple(numeric_attributes))


def evaluate(model: LeadModel, rows: Sequence[FeatureRow], labels: Sequence[int]) -> Evaluation:
    """ROC AUC, PR AUC, Brier score and a ten-band calibration table on held-out rows.
    Both classes must be present (an AUC of one class is not a number)."""
    if len(set(labels)) < 2:
        raise NotEnoughOutcomes(
            "the held-out rows hold one outcome only: a ranking cannot be measured"
        )
    found = model.probabilities(rows)
    return measure(found, labels)


def measure(scores: Sequence[float], labels: Sequence[int]) -> Evaluation:
    """The :class:`Evaluation` of any scores against outcomes (probabilities for the
    Brier score and calibration; a contract's points rank just as well for the AUCs,
    with ``brier`` and ``calibration`` then meaningless and left empty)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    if len(set(y.tolist())) < 2:
        raise NotEnoughOutcomes("the outcomes hold one class only: a ranking cannot be measured")
    probabilities = bool(p.min() >= 0.0 and p.max() <= 1.0)
    bands: list[tuple[float, float, int]] = []
    if probabilities:
        edges = np.linspace(0.0, 1.0, 11)
        which = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
        for band in range(10):
            mask = which == band
            count = int(mask.sum())
            if count:
                bands.append(
                    (round(float(p[mask].mean()), 4), round(float(y[mask].mean()), 4), count)
                )
    return Evaluation(
        rows=len(y),
        positives=int(y.sum()),
        roc_auc=round(float(roc_auc_score(y, p)), 4),
        pr_auc=round(float(average_precision_score(y, p)), 4),
        brier=round(float(brier_score_loss(y, p)), 4) if probabilities else math.nan,
        base_rate=round(float(y.mean()), 4),
        calibration=tuple(bands),
    )


def stratified_holdout(labels: Sequence[int], *, share: float = 0.3, seed: int = 7) -> list[bool]:
    """For each row, whether it is held out: ``share`` of the positives and of the
    negatives, drawn at random with ``seed`` (the same split on every run). For a
    history with no times (X Education's file)."""
    rng = np.random.default_rng(seed)
    held = [False] * len(labels)
    for wanted in (0, 1):
        indexes = [i for i, y in enumerate(labels) if int(bool(y)) == wanted]
        count = round(len(indexes) * share)
        for i in rng.permutation(indexes)[:count]:
            held[int(i)] = True
    return held


def time_holdout(moments: Sequence[Any], *, share: float = 0.3) -> list[bool]:
    """For each row, whether it is held out: the latest ``share`` of the rows by their
    moment (the model learns from the past and is judged on what came after, as it
    will be used)."""
    order = sorted(range(len(moments)), key=lambda i: moments[i])
    first_held = len(order) - round(len(order) * share)
    held = [False] * len(moments)
    for position, i in enumerate(order):
        held[i] = position >= first_held
    return held
