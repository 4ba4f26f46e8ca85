#!/usr/bin/env python3
"""scikit-learn's logistic regression beside Concord's heads, on the same splits.

Reads what `cargo run --release -p concord-ml --example head_vs_sklearn` wrote under
target/tmp/head_vs_sklearn/ (embeddings as raw little-endian f32 rows, the labels, each split's
training items and the Rust methods' test accuracies), trains on each split

  sklearn-C1  LogisticRegression()            (C = 1, multinomial, lbfgs)
  sklearn-CV  LogisticRegressionCV()          (10 values of C in 1e-4..1e4, 5 stratified folds,
                                               accuracy, refit on all training labels)

with max_iter=5000 so that both converge, tests on every item of the set outside the training
labels, and prints one table: method x labels -> mean test accuracy (and standard deviation over
the seeds), beside the majority-class rate of the test parts. Sets whose name ends in "-dev"
are development data; every other set is reported only.

Usage: python3 scripts/bench/head_vs_sklearn.py [--dir target/tmp/head_vs_sklearn]
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV


def main() -> int:
    root = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=os.path.join(root, "target", "tmp", "head_vs_sklearn"))
    args = parser.parse_args()
    with open(os.path.join(args.dir, "splits.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    sets = {}
    for s in manifest["sets"]:
        x = np.fromfile(os.path.join(args.dir, s["embeddings"]), dtype="<f4")
        x = x.reshape(s["rows"], s["dimension"]).astype(np.float64)
        sets[s["name"]] = (x, np.asarray(s["labels"]), s["development"])

    # (set, labels) -> method -> [accuracy per seed]; and seconds per method.
    results = defaultdict(lambda: defaultdict(list))
    majority = defaultdict(list)
    seconds = defaultdict(float)
    unconverged = 0
    for split in manifest["splits"]:
        x, y, _ = sets[split["set"]]
        train = np.asarray(split["train"])
        test = np.setdiff1d(np.arange(len(y)), train)
        key = (split["set"], split["labels"])
        majority[key].append(split["majority"])
        for method, acc in split["rust"]:
            results[key][method].append(acc)
        for method, model in [
            ("sklearn-C1", LogisticRegression(max_iter=5000)),
            ("sklearn-CV", LogisticRegressionCV(max_iter=5000)),
        ]:
            started = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(x[train], y[train])
            unconverged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            seconds[method] += time.perf_counter() - started
            results[key][method].append(float((model.predict(x[test]) == y[test]).mean()))

    splits_per_method = max(1, len(manifest["splits"]))
    methods = []
    for per_method in results.values():
        for m in per_method:
            if m not in methods:
                methods.append(m)
    label_counts = sorted({k[1] for k in results})
    names = list(dict.fromkeys(k[0] for k in results))
    header = f"{'set':<14} {'method':<14}" + "".join(f"{n:>16}" for n in label_counts)
    print(header)
    print("-" * len(header))
    for name in names:
        tag = " (dev)" if sets[name][2] else ""
        row = f"{name + tag:<14.14} {'majority':<14}"
        for n in label_counts:
            row += f"{statistics.mean(majority[(name, n)]):>16.3f}"
        print(row)
        for m in methods:
            row = f"{'':<14} {m:<14}"
            for n in label_counts:
                accs = results[(name, n)].get(m, [])
                if accs:
                    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
                    row += f"{statistics.mean(accs):>10.3f} ±{sd:.3f}"
                else:
                    row += f"{'-':>16}"
            print(row)
    seeds = {s["seed"] for s in manifest["splits"]}
    print(
        f"\n{len(seeds)} seeds per cell; test part = every item of the set outside the training "
        "labels; mean ± sd over seeds."
    )
    for m in ("sklearn-C1", "sklearn-CV"):
        print(f"{m}: {1000 * seconds[m] / splits_per_method:.1f} ms per training")
    if unconverged:
        print(f"warning: {unconverged} scikit-learn fits did not converge", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
