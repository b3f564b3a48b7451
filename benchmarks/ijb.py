"""IJB-C-sized 1:1 scoring: time and peak memory, against the per-template Python loop.

Random features at IJB-C's scale (~470k images of [original, flipped] 512-d features, ~23k
templates with several media each, ~15.7M template pairs) go through
``brownface.evaluate.ijb_score``: image features, template aggregation, pair scores and the
TAR@FAR table. The baseline is the straightforward loop (one template at a time, one pair at a
time) timed on a subsample and scaled to the full size. Goal: under 60 s and 4 GiB.

    .venv/bin/python benchmarks/ijb.py [--images 469375] [--templates 23124] [--pairs 15658489]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from brownface.evaluate.ijb_score import image_features, pair_scores, tar_at_far, template_features
from brownface.runlog import tune_allocator


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _loop_templates(feats, templates, media, first):
    """One template at a time, one media at a time (the reference's shape of code: each
    template's images found by scanning every image's template id)."""
    out = {}
    for t in np.unique(templates)[:first]:
        rows = np.flatnonzero(templates == t)
        total = 0
        for m in np.unique(media[rows]):
            total = total + feats[rows[media[rows] == m]].mean(0)
        out[t] = total / np.linalg.norm(total)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=469_375)
    parser.add_argument("--templates", type=int, default=23_124)
    parser.add_argument("--pairs", type=int, default=15_658_489)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop-templates", type=int, default=300, help="baseline subsample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    rng = np.random.default_rng(0)
    templates = np.sort(rng.integers(0, args.templates, args.images))
    media = templates * 8 + rng.integers(0, 4, args.images)  # a few media per template
    raw = rng.standard_normal((args.images, 2, args.dim), dtype=np.float32)
    scores = rng.uniform(0.5, 1.0, args.images).astype(np.float32)
    t1 = rng.integers(0, args.templates, args.pairs)
    t2 = rng.integers(0, args.templates, args.pairs)
    labels = rng.integers(0, 2, args.pairs)
    base = _peak_gib()
    print(f"{args.images:,} images x 2 x {args.dim}, {args.templates:,} templates, "
          f"{args.pairs:,} pairs; inputs {base:.2f} GiB")  # fmt: skip

    start = time.perf_counter()
    feats = image_features(raw, scores)
    tmpl = template_features(feats, templates, media)
    t_templates = time.perf_counter() - start
    present = np.isin(t1, tmpl.templates) & np.isin(t2, tmpl.templates)
    t1, t2, labels = t1[present], t2[present], labels[present]
    start = time.perf_counter()
    s = pair_scores(tmpl, t1, t2)
    t_pairs = time.perf_counter() - start
    start = time.perf_counter()
    table = tar_at_far(labels, s)
    t_roc = time.perf_counter() - start
    total = t_templates + t_pairs + t_roc
    print(f"templates {t_templates:.1f} s, {len(s):,} pair scores {t_pairs:.1f} s, "
          f"ROC + TAR@FAR {t_roc:.1f} s: total {total:.1f} s (goal < 60 s)")  # fmt: skip
    print(f"peak RSS {_peak_gib():.2f} GiB (goal < 4 GiB), TAR@FAR {table}")

    k = args.loop_templates  # the baseline on the first k templates, then scaled
    start = time.perf_counter()
    loop = _loop_templates(feats, templates, media, k)
    t_loop_templates = time.perf_counter() - start
    subset = np.flatnonzero(np.isin(t1, list(loop)) & np.isin(t2, list(loop)))[:20_000]
    start = time.perf_counter()
    loop_scores = [float(loop[a] @ loop[b]) for a, b in zip(t1[subset], t2[subset])]
    t_loop_pairs = time.perf_counter() - start
    np.testing.assert_allclose(loop_scores, s[subset], rtol=1e-4, atol=1e-6)  # same scores
    scaled = t_loop_templates / len(loop) * len(tmpl.templates) + t_loop_pairs / max(
        len(subset), 1
    ) * len(s)
    print(f"per-template / per-pair loop on {len(loop)} templates and {len(subset):,} pairs "
          f"(same scores), scaled to the full size: {scaled:.0f} s = "
          f"{scaled / (t_templates + t_pairs):.0f}x the vectorised time")  # fmt: skip


if __name__ == "__main__":
    main()
