"""The model: text features (word and character n-grams, the subject weighted) and a linear
classifier with calibrated probabilities, from scikit-learn; stored as bytes signed by the
desk, so a daemon only ever unpickles a model that this desk wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass
from typing import Any

from maildesk.errors import MaildeskError

INSTALL_HINT = "learned routing needs scikit-learn: pip install 'maildesk[learn]'"
FORMAT = 1  # the layout of the pickled dict; a daemon skips models of another format
MAX_BODY = 2000  # characters of the first message that count; the start says what it is about
SUBJECT_WEIGHT = 2  # the subject counts this many times


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
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(
        lowercase=True, ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype="float32"
    )
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, dtype="float32"
    )
    svm = LinearSVC(C=0.5)
    # ensemble=False: one SVM plus its calibration, so a prediction costs one dot product.
    calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False)
    return make_pipeline(FeatureUnion([("words", words), ("chars", chars)]), calibrated)


@dataclass(frozen=True)
class Model:
    """A trained model of one label, as a daemon holds it."""

    label: str
    version: int
    estimator: Any

    def rank(self, text: str, top: int = 3) -> list[tuple[str, float]]:
        """The `top` most likely values for the text, with their probabilities."""
        proba = self.estimator.predict_proba([text])[0]
        classes = self.estimator.classes_
        order = proba.argsort()[::-1][:top]
        return [(str(classes[i]), float(proba[i])) for i in order]


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
