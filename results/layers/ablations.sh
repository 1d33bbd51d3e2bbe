#!/usr/bin/env bash
# The ablations of docs/results.md ("Why layered nets win at small budgets"): each factor as an
# option of the toolkit (a prune rule, a start, the neuron count), against the layered controls
# of results/layers, in order of priority.
# Run as one or two one-thread processes:  bash results/layers/ablations.sh 0/2 & bash results/layers/ablations.sh 1/2
# Every cell is resumable; rebuild the tables with:
#   python -m ncg.experiments report results/layers --docs docs/results.md
set -euo pipefail
shard=${1:-0/1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { python -m ncg.experiments run --out results/layers --shard "$shard" --seeds 0 1 2 3 4 "$@"; }
factors() {  # the layer-free GraNet with one factor changed, at each budget given
    for p in "$@"; do
        for f in "prune_score=quota" "prune_score=normalized_magnitude" "start.init=by_source" "start.reach=16" \
                 "start.layered=1"; do echo "sparse-granet[$f]@$p"; done
        echo "sparse-granet[neurons=128]@$p layered1-granet[neurons=128]@$p layered2-granet[neurons=128]@$p"
    done
}
# 1. every factor at 10k parameters on MNIST, then Fashion-MNIST; depth with skips at 10k
run --datasets mnist --methods $(factors 10000) skips2-granet@10000
run --datasets fashion-mnist --methods $(factors 10000)
# 2. 20k parameters
run --datasets mnist fashion-mnist --methods $(factors 20000)
