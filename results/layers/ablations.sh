#!/usr/bin/env bash
# The ablations of docs/results.md ("Why layered nets win at small budgets"): each factor as an
# option of the toolkit (a prune rule, a start, the neuron count), against the layered controls
# of results/layers (results/layers/sweep.sh), in order of priority.
# Run as one or more one-thread processes:  bash results/layers/ablations.sh 0/2 & bash results/layers/ablations.sh 1/2
# Every cell is resumable; rebuild the tables with:
#   python -m ncg.experiments report results/layers --docs docs/results.md
set -euo pipefail
shard=${1:-0/1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { python -m ncg.experiments run --out results/layers --shard "$shard" --seeds 0 1 2 3 4 "$@"; }
factors="prune_score=quota prune_score=normalized_magnitude start.init=by_source start.reach=16 start.layered=1"
free() { for f in $factors; do echo "sparse-granet[$f]@$1"; done; }
neurons() { for d in sparse layered1 layered2; do echo "$d-granet[neurons=$1]@$2"; done; }
# 1. every factor at 10k parameters, MNIST then Fashion-MNIST; bounded depth with skips at 10k
run --datasets mnist --methods $(free 10000) $(neurons 128 10000) skips2-granet@10000
run --datasets fashion-mnist --methods $(free 10000) $(neurons 128 10000)
# 2. the hop cap's reach on MNIST at 10k
run --datasets mnist --methods "sparse-granet[start.reach=4]@10000" "sparse-granet[start.reach=8]@10000"
# 3. the factors that closed the gap at 10k, at 20k
run --datasets mnist fashion-mnist --methods "sparse-granet[start.reach=16]@20000" "sparse-granet[start.layered=1]@20000" \
    $(neurons 128 20000)
# 4. the hop cap (sparse-local-granet) at 40k and 80k, where layer-freedom already paid
run --datasets mnist fashion-mnist --methods sparse-local-granet@40000 sparse-local-granet@80000
# 5. neurons and the hop cap together at 10k
run --datasets mnist fashion-mnist --methods "sparse-granet[neurons=128,start.reach=16]@10000" \
    "sparse-granet[neurons=256,start.reach=16]@10000" "sparse-granet[neurons=256]@10000" "layered1-granet[neurons=256]@10000"
