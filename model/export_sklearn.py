#!/usr/bin/env python3
"""Export a fitted scikit-learn IsolationForest to flowsentry's model format.

    from export_sklearn import export
    forest = IsolationForest(...).fit(X)          # X columns in `feature_names` order
    export(forest, feature_names, "model/forest.json")

Feature names are CIC-IDS2017 / CICFlowMeter-4 column names (either spelling, surrounding
spaces allowed). flowsentry cleans inputs the same way for every model: NaN -> 0 and
+/-Infinity -> +/-3.4028234663852886e38 (float32 max); fit on data cleaned that way (see
`clean`). Scores then equal -forest.score_samples(X) to floating-point precision.
"""
import datetime
import json
import math
import sys

F32_MAX = 3.4028234663852886e38


def clean(v):
    """The cleaning flowsentry applies to every raw feature value."""
    if math.isnan(v):
        return 0.0
    if math.isinf(v):
        return math.copysign(F32_MAX, v)
    return v


def export(forest, feature_names, path, threshold=None, notes=""):
    import sklearn

    trees = []
    for est, feats in zip(forest.estimators_, forest.estimators_features_):
        t = est.tree_
        trees.append(
            {
                "feature": [int(feats[f]) if l != -1 else -2 for f, l in zip(t.feature, t.children_left)],
                "threshold": [float(x) for x in t.threshold],
                "left": [int(x) for x in t.children_left],
                "right": [int(x) for x in t.children_right],
                "n_samples": [int(x) for x in t.n_node_samples],
            }
        )
    offset = float(forest.offset_)
    model = {
        "format": "flowsentry-isolation-forest",
        "version": 1,
        "features": [n.strip() for n in feature_names],
        "transforms": ["none"] * len(feature_names),
        "max_samples": int(forest.max_samples_),
        "offset": offset,
        # sklearn flags a row when score_samples < offset_, i.e. anomaly score > -offset_.
        "threshold": float(threshold) if threshold is not None else -offset,
        "trees": trees,
        "provenance": {
            "trainer": f"scikit-learn {sklearn.__version__}",
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "training_files": [],
            "rows_used": int(getattr(forest, "_n_samples", 0) or 0),
            "params": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                       for k, v in forest.get_params().items()},
            "notes": notes,
        },
    }
    with open(path, "w") as fh:
        json.dump(model, fh)


if __name__ == "__main__":
    sys.exit(__doc__)
