#!/usr/bin/env python3
"""cleanlab beside Concord's label-error detector, on the same embeddings and planted flips.

Reads what `concord simulate-label-errors --export DIR` wrote (embeddings.f32 and
probabilities.f32 as raw little-endian f32 rows, labels.json with the classes, the true labels
and the flipped ones) and prints precision@50/100/200 and recall of the planted flips for

  cleanlab-sklearn   5-fold cross_val_predict of LogisticRegression() (C = 1, lbfgs) on the
                     embeddings, then cleanlab's find_label_issues(..., return_indices_ranked_by=
                     "self_confidence") (the issue's anchor setup)
  cleanlab-concord   cleanlab's find_label_issues on Concord's own out-of-fold probabilities
                     (checks the confident-learning port: same probabilities, cleanlab's code)

Usage: python3 scripts/bench/label_errors_cleanlab.py DIR
"""

import json
import os
import sys
import warnings

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict


def precision_recall(ranked, flipped, k):
    top = ranked[:k]
    found = int(flipped[top].sum()) if len(top) else 0
    precision = found / len(top) if len(top) else 0.0
    recall = found / max(int(flipped.sum()), 1)
    return precision, recall


def report(name, ranked, flipped):
    p50, _ = precision_recall(ranked, flipped, 50)
    p100, r100 = precision_recall(ranked, flipped, 100)
    p200, _ = precision_recall(ranked, flipped, 200)
    _, r_all = precision_recall(ranked, flipped, len(ranked))
    print(f"| {name} | {len(ranked)} | {p50:.3f} | {p100:.3f} | {p200:.3f} | {r100:.3f} | {r_all:.3f} |")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = sys.argv[1]
    with open(os.path.join(folder, "labels.json"), encoding="utf-8") as f:
        meta = json.load(f)
    classes = len(meta["classes"])
    truth = np.array(meta["truth"])
    noisy = np.array(meta["noisy"])
    flipped = truth != noisy
    x = np.fromfile(os.path.join(folder, "embeddings.f32"), dtype="<f4").reshape(len(noisy), -1)
    concord = np.fromfile(os.path.join(folder, "probabilities.f32"), dtype="<f4").reshape(
        len(noisy), classes
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        sklearn = cross_val_predict(
            LogisticRegression(max_iter=5000), x, noisy, cv=folds, method="predict_proba"
        )
    print(f"{len(noisy)} items, {classes} classes, {int(flipped.sum())} flips")
    print("| method | flagged | P@50 | P@100 | P@200 | recall@100 | recall (all flagged) |")
    print("|---|---|---|---|---|---|---|")
    for name, probs in [("cleanlab-sklearn", sklearn), ("cleanlab-concord", concord.astype(float))]:
        ranked = np.asarray(
            find_label_issues(noisy, probs, return_indices_ranked_by="self_confidence")
        )
        report(name, ranked, flipped)
        accuracy = float((probs.argmax(axis=1) == truth).mean())
        print(f"|   (out-of-fold accuracy against the true labels {accuracy:.3f}) | | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
