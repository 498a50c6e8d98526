#!/usr/bin/python3
"""Reference values for Concord's evaluation package, computed by scikit-learn.

Run with Debian's python3 (apt-get install -y python3-sklearn):

    /usr/bin/python3 evaluation/testdata/sklearn_ref.py

It writes two files next to itself:
  sklearn_vectors.json   the fixed input vectors (generated from a fixed seed)
  sklearn_expected.json  what scikit-learn (and scipy, for the normal quantile
                         of the Wilson interval and for DeLong's AUC variance)
                         computes on them.
The Go tests read both and compare to 1e-9. Regenerating must leave both files
unchanged unless the vectors or the library versions change.
"""
import json
import os

import numpy as np
import scipy
import scipy.stats
import sklearn
from sklearn import metrics

HERE = os.path.dirname(os.path.abspath(__file__))
Z = scipy.stats.norm.ppf(0.975)


def wilson(s, n):
    if n == 0:
        return [0.0, 0.0, 1.0]
    p = s / n
    den = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / den
    half = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / den
    return [p, max(0.0, centre - half), min(1.0, centre + half)]


def delong_se(scores, labels):
    """Standard error of the AUC by DeLong et al. (1988), via midranks."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    m, n = len(pos), len(neg)
    allr = scipy.stats.rankdata(np.concatenate([pos, neg]))
    pr = scipy.stats.rankdata(pos)
    nr = scipy.stats.rankdata(neg)
    v10 = (allr[:m] - pr) / n
    v01 = 1 - (allr[m:] - nr) / m
    return float(np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n))


def binary_vectors(rng):
    cases = {}
    n = 200
    y = (rng.random(n) < 0.35).astype(int)
    s = np.round(rng.normal(0, 1, n) + 1.3 * y, 2)  # rounding makes ties
    cases["noisy_ties"] = (s, y)
    y = rng.integers(0, 2, 60)
    s = np.clip(np.round((rng.random(60) * 0.8 + 0.3 * y) * 4) / 4, 0, 1)  # 5 levels only
    cases["heavy_ties"] = (s, y)
    cases["small"] = (np.array([0.1, 0.4, 0.35, 0.8, 0.65, 0.2, 0.9, 0.55, 0.3, 0.7]),
                      np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 1]))
    n = 500
    y = (rng.random(n) < 0.05).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 2.0 * y - 1.5)))
    cases["imbalanced"] = (s, y)
    return cases


def binary_expected(s, y, thr):
    pred = (s >= thr).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "threshold": float(thr),
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
        "sensitivity": float(metrics.recall_score(y, pred, zero_division=0)),
        "specificity": float(metrics.recall_score(y, pred, pos_label=0, zero_division=0)),
        "precision": float(metrics.precision_score(y, pred, zero_division=0)),
        "f1": float(metrics.f1_score(y, pred, zero_division=0)),
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y, pred)),
        "wilson_sensitivity": wilson(tp, tp + fn),
        "wilson_specificity": wilson(tn, tn + fp),
        "wilson_precision": wilson(tp, tp + fp),
        "wilson_accuracy": wilson(tp + tn, len(y)),
    }


def main():
    rng = np.random.default_rng(20261126)
    vectors = {"binary": {}, "multiclass": {}, "segmentation": {}}
    expected = {"versions": {"sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
                "binary": {}, "multiclass": {}, "segmentation": {}}

    for name, (s, y) in binary_vectors(rng).items():
        vectors["binary"][name] = {"scores": s.tolist(), "labels": y.tolist()}
        fpr, tpr, thr = metrics.roc_curve(y, s, drop_intermediate=False)
        youden = thr[np.argmax(tpr - fpr)]
        at = {}
        for target in (0.8, 0.9, 0.95):
            at[str(target)] = float(thr[np.argmax(tpr >= target)])
        expected["binary"][name] = {
            "auc": float(metrics.roc_auc_score(y, s)),
            "auc_delong_se": delong_se(s, y),
            "youden": float(youden),
            "threshold_at_sensitivity": at,
            "at_youden": binary_expected(s, y, youden),
            "at_half": binary_expected(s, y, 0.5),
        }

    k, n = 3, 150
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    vectors["multiclass"]["three_class"] = {"probs": p.tolist(), "labels": y.tolist()}
    pred = p.argmax(axis=1)
    expected["multiclass"]["three_class"] = {
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "macro_auc": float(metrics.roc_auc_score(y, p, multi_class="ovr", average="macro")),
        "per_class_auc": [float(metrics.roc_auc_score((y == c).astype(int), p[:, c])) for c in range(k)],
        "confusion": metrics.confusion_matrix(y, pred).tolist(),
    }

    preds, truths = [], []
    for i in range(10):
        t = np.zeros((16, 16), dtype=np.float32)
        if i != 3:  # image 3 has no lesion at all
            r, c, h = rng.integers(2, 9), rng.integers(2, 9), rng.integers(3, 7)
            t[r:r + h, c:c + h] = 1
        noise = rng.normal(0, 0.25, (16, 16))
        pr = np.clip(np.round(t * 0.7 + 0.15 + noise, 3), 0, 1).astype(np.float32)
        if i == 3:
            pr = np.minimum(pr, np.float32(0.4))  # and the model agrees: both empty
        preds.append(pr.ravel())
        truths.append(t.ravel())
    vectors["segmentation"]["lesions"] = {"threshold": 0.5,
                                          "preds": [x.astype(float).tolist() for x in preds],
                                          "truths": [x.astype(float).tolist() for x in truths]}
    dice, iou = [], []
    for pr, t in zip(preds, truths):
        pb, tb = (pr >= np.float32(0.5)).astype(int), (t >= 0.5).astype(int)
        dice.append(float(metrics.f1_score(tb, pb, zero_division=1)))
        iou.append(float(metrics.jaccard_score(tb, pb, zero_division=1)))
    expected["segmentation"]["lesions"] = {"per_image_dice": dice, "per_image_iou": iou,
                                           "mean_dice": float(np.mean(dice)), "mean_iou": float(np.mean(iou))}

    for fname, obj in (("sklearn_vectors.json", vectors), ("sklearn_expected.json", expected)):
        with open(os.path.join(HERE, fname), "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
