#!/usr/bin/env bash
# The layer-freedom sweep of docs/results.md ("Does layer-freedom pay?"), in order of priority.
# Run as two one-thread processes:  bash results/layers/sweep.sh 0/2 & bash results/layers/sweep.sh 1/2
# Every cell is resumable (a killed sweep reruns only the cell that was running); then rebuild
# the table with:  python -m ncg.experiments report results/layers --docs docs/results.md
set -euo pipefail
shard=${1:-0/1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { python -m ncg.experiments run --out results/layers --shard "$shard" --seeds 0 1 2 3 4 "$@"; }
pair() { for p in "$@"; do echo "sparse-granet@$p layered1-granet@$p layered2-granet@$p layered3-granet@$p mlp-sparse@$p"; done; }
# 1. the layer-free rule and its layered controls at 10k and 20k parameters, then 40k and 80k
run --datasets mnist --methods $(pair 10000 20000)
run --datasets fashion-mnist --methods $(pair 10000 20000)
# 2. the extended budget at 20k parameters: 60 epochs (4 rounds of 12, 12 fine-tuning)
run --datasets mnist --methods "sparse-granet[epochs_per_round=12,final_epochs=12]@20000"
run --datasets mnist fashion-mnist --methods $(pair 40000 80000)
# 3. equal training FLOPs at 40k: SET and RigL from a sparse start for 49 epochs (GraNet's FLOPs)
run --datasets mnist fashion-mnist --methods "sparse-set[rounds=46]" "sparse-rigl[rounds=46]" \
    "layered1-set[rounds=46]" "layered1-rigl[rounds=46]"
