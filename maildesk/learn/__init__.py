"""Learned routing: a model trained on the desk's own resolved tickets suggests a queue,
category or type for new mail, and applies it above `[learning] apply_above`.

    model.py    the features and estimator (scikit-learn, imported lazily), signed bytes
    train.py    examples from the store, cross-validation, metrics, a new stored version
    predict.py  the pipeline's step: the newest model per daemon, suggestions, never a failure
    feedback.py suggestions that agents later corrected, for `maildesk learn --report`

scikit-learn is the optional extra `maildesk[learn]`; without it the desk routes by rules.
docs/learning.md is the reference.
"""
