"""The model: text features (word and character n-grams, the subject weighted) and a linear
classifier with calibrated probabilities, from scikit-learn; stored as bytes signed by the
desk, so a daemon only ever unpickles a model that this desk wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from maildesk.errors import MaildeskError

INSTALL_HINT = "learned routing needs scikit-learn: pip install 'maildesk[learn]'"
FORMAT = 1  # the layout of the pickled dict; a daemon skips models of another format
MAX_BODY = 1000  # characters of the first message that count; the start says what it is about
SUBJECT_WEIGHT = 1  # times the subject is in the text (twice was worse: docs/learning.md)


class LearnUnavailable(MaildeskError):
    """scikit-learn is not installed (the `learn` extra), or a model cannot be trusted."""


def require_sklearn() -> None:
    """Raise LearnUnavailable, saying how to enable it, when scikit-learn is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise LearnUnavailable(INSTALL_HINT) from None


def ticket_text(subject: str, body: str) -> str:
    """The text a ticket is learned and predicted from: subject (weighted) and new text."""
    subject = " ".join(subject.split())
    return " ".join([subject] * SUBJECT_WEIGHT + [body[:MAX_BODY]])


def build_estimator(*, folds: int = 3) -> Any:
    """TF-IDF over words (1-2) and characters (2-5 within words), a calibrated linear SVM."""
    require_sklearn()
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(
        lowercase=True, ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32
    )
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, dtype=np.float32
    )
    svm = LinearSVC(C=0.5)
    # ensemble=False: one SVM plus its calibration, so a prediction costs one dot product.
    calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False)
    return make_pipeline(FeatureUnion([("words", words), ("chars", chars)]), calibrated)


class Scorer:
    """The fitted estimator's arithmetic for one text at a time: the same probabilities as
    its predict_proba, without scikit-learn's per-call checks (tens of microseconds, not
    milliseconds, for a message)."""

    def __init__(self, estimator: Any) -> None:
        import numpy as np

        union, calibrated = estimator.steps[0][1], estimator.steps[-1][1]
        self.parts: list[tuple[Any, dict[str, int], Any, int, bool]] = []
        offset = 0
        for _, vec in union.transformer_list:
            vocabulary = vec.vocabulary_
            self.parts.append(
                (vec.build_analyzer(), vocabulary, vec.idf_, offset, vec.sublinear_tf)
            )
            offset += len(vocabulary)
        inner = calibrated.calibrated_classifiers_[0]
        svm = inner.estimator
        self.classes = [str(c) for c in calibrated.classes_]
        self.coef = np.asarray(svm.coef_, dtype=np.float64)
        self.intercept = np.asarray(svm.intercept_, dtype=np.float64)
        self.a = np.array([c.a_ for c in inner.calibrators], dtype=np.float64)
        self.b = np.array([c.b_ for c in inner.calibrators], dtype=np.float64)

    def proba(self, text: str) -> Any:
        """The probability of each class (in `classes` order)."""
        import numpy as np

        indices, values = [], []
        for analyze, vocabulary, idf, offset, sublinear in self.parts:
            counts = Counter(j for tok in analyze(text) if (j := vocabulary.get(tok)) is not None)
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            weights = (1.0 + np.log(tf) if sublinear else tf) * idf[idx]
            weights /= np.sqrt(weights @ weights)
            indices.append(idx + offset)
            values.append(weights)
        margin = self.intercept.copy()
        if indices:
            margin += self.coef[:, np.concatenate(indices)] @ np.concatenate(values)
        p = 1.0 / (1.0 + np.exp(self.a * margin + self.b))
        if len(self.classes) == 2:
            return np.array([1.0 - p[0], p[0]])
        total = p.sum()
        return p / total if total > 0 else np.full(len(p), 1.0 / len(p))


@dataclass(frozen=True)
class Model:
    """A trained model of one label, as a daemon holds it."""

    label: str
    version: int
    estimator: Any
    scorer: Scorer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scorer", Scorer(self.estimator))

    def rank(self, text: str, top: int = 3) -> list[tuple[str, float]]:
        """The `top` most likely values for the text, with their probabilities."""
        proba = self.scorer.proba(text)
        order = proba.argsort()[::-1][:top]
        return [(self.scorer.classes[i], float(proba[i])) for i in order]


def signing_key(secret: str) -> bytes:
    """The key models are signed with, derived from the desk's secret."""
    return hmac.new(secret.encode(), b"maildesk learned model", hashlib.sha256).digest()


def dump(label: str, estimator: Any, key: bytes) -> tuple[bytes, str]:
    """The model's bytes and their signature."""
    blob = pickle.dumps({"format": FORMAT, "label": label, "estimator": estimator}, protocol=5)
    return blob, hmac.new(key, blob, hashlib.sha256).hexdigest()


def load(label: str, version: int, blob: bytes, digest: str, key: bytes) -> Model:
    """The model from its bytes, only if this desk signed them; else LearnUnavailable."""
    expected = hmac.new(key, blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest):
        raise LearnUnavailable(f"{label} model v{version} is not signed by this desk; ignored")
    require_sklearn()
    data = pickle.loads(blob)  # signed by this desk above: not someone else's bytes
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("label") != label:
        raise LearnUnavailable(f"{label} model v{version} has an unknown format; ignored")
    return Model(label, version, data["estimator"])
