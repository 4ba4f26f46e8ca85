"""The Python reference for `cargo bench -p concord-ml --bench embed_throughput`: the same
model folder, the same texts, the same batch sizes, with sentence-transformers on PyTorch
(2 threads), and optionally a check that Concord's embeddings equal the reference's.

Run through scripts/bench-reference.sh, which makes the bench-only virtualenv.
Usage: bench_reference.py MODEL_DIR DATA_DIR ITEMS [CONCORD_EMBEDDINGS.json]
"""
import json
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

model_dir, data_dir, items = sys.argv[1], sys.argv[2], int(sys.argv[3])
theirs = json.load(open(sys.argv[4])) if len(sys.argv) > 4 else None
torch.set_num_threads(2)
model = SentenceTransformer(model_dir, device="cpu")
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, max_seq_length {model.max_seq_length}")


def texts(name):
    out = []
    for line in open(f"{data_dir}/{name}"):
        line = line.strip()
        if line:
            out.append(json.loads(line)["text"])
        if len(out) == items:
            break
    return out


print("| texts | mean tokens | batch | items/s |")
print("|---|---|---|---|")
for name, file in [("tweets", "vader_tweets.jsonl"), ("emails", "spam_dev.jsonl")]:
    t = texts(file)
    tokens = [min(len(model.tokenizer(x)["input_ids"]), model.max_seq_length) for x in t]
    model.encode(t[:8], batch_size=8)  # warm-up
    for batch in [1, 8, 32, 128]:
        start = time.perf_counter()
        emb = model.encode(t, batch_size=batch, normalize_embeddings=True)
        rate = len(t) / (time.perf_counter() - start)
        print(f"| {name} | {np.mean(tokens):.0f} | {batch} | {rate:.1f} |")
    if theirs is not None:
        ours = np.array(theirs[name], dtype=np.float32)
        n = min(len(ours), len(emb))
        cos = np.sum(ours[:n] * emb[:n], axis=1) / (
            np.linalg.norm(ours[:n], axis=1) * np.linalg.norm(emb[:n], axis=1)
        )
        print(f"{name}: Concord vs reference cosine over {n} texts: min {cos.min():.6f}, mean {cos.mean():.6f}")
