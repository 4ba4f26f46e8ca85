#!/usr/bin/env bash
# Fetches the three held-out sentiment sets (Amazon review, movie review and New York Times
# editorial snippets, each rated by 20 people; Hutto & Gilbert, ICWSM 2014) from the source
# distribution of the PyPI package vaderSentiment 3.3.2 (MIT), checks its SHA-256, and writes
# them as JSONL {"id","text","label","mean"} with the same three-way labels as
# ../shared/data/vader_tweets.jsonl: positive (mean >= 0.5), negative (<= -0.5), else neutral.
#
# They are other domains than the development tweets and are used only to REPORT zero-shot and
# few-label accuracy: no prompt, threshold or calibration is chosen on them.
#
# Usage: scripts/fetch_heldout_sentiment.sh [OUT_DIR]   (default: target/heldout)
set -euo pipefail
out="${1:-target/heldout}"
sha=5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9
if [[ -s "$out/amazon.jsonl" && -s "$out/movie.jsonl" && -s "$out/nyt.jsonl" ]]; then
  exit 0
fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip download --quiet --no-deps --no-binary :all: --dest "$work" vaderSentiment==3.3.2
archive="$work/vaderSentiment-3.3.2.tar.gz"
echo "$sha  $archive" | sha256sum --check --quiet
tar xzf "$archive" -C "$work"
tar xzf "$work/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$work"
python3 - "$work/hutto_ICWSM_2014" "$out" <<'PY'
import json, sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name, file in [("amazon", "amazonReviewSnippets_GroundTruth.txt"),
                   ("movie", "movieReviewSnippets_GroundTruth.txt"),
                   ("nyt", "nytEditorialSnippets_GroundTruth.txt")]:
    rows = []
    for line in (src / file).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.rstrip("\r").split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            continue
        mean = float(parts[1])
        label = "positive" if mean >= 0.5 else "negative" if mean <= -0.5 else "neutral"
        rows.append({"id": f"{name}-{parts[0]}", "text": parts[2].strip(), "label": label, "mean": mean})
    tmp = out / f"{name}.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.rename(out / f"{name}.jsonl")
    print(f"{name}: {len(rows)} items", file=sys.stderr)
PY
