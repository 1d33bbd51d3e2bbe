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
long="[epochs_per_round=12,final_epochs=12]"  # 60 epochs: 4 rounds of 12, then 12 of fine-tuning
flops="[rounds=46]"                            # 49 epochs from a sparse start: GraNet's training FLOPs at 40k
# 1. the layer-free rule (GraNet) and its layered controls at 10k and 20k parameters
run --datasets mnist --methods $(pair 10000 20000)
run --datasets fashion-mnist --methods $(pair 10000 20000)
# 2. the extended budget at 20k parameters, layer-free and the best layered control at 20k
run --datasets mnist --methods "sparse-granet$long@20000" "layered2-granet$long@20000"
# 2b. bounded depth with skip connections (each layer feeds every later one) at 20k
run --datasets mnist --methods skips2-granet@20000 skips3-granet@20000
# 2c. Hebbian regrowth (gradual magnitude pruning, coactivation regrowth) layer-free and layered at 40k
run --datasets mnist --methods sparse-gradual-hebbian@40000 layered1-gradual-hebbian@40000
# 3. 40k parameters, then equal training FLOPs there (SET and RigL from a sparse start), then 80k
run --datasets mnist fashion-mnist --methods $(pair 40000)
run --datasets mnist --methods "sparse-set$flops" "sparse-rigl$flops" "layered1-set$flops" "layered1-rigl$flops"
run --datasets mnist fashion-mnist --methods $(pair 80000)
run --datasets fashion-mnist --methods "sparse-set$flops" "sparse-rigl$flops" "layered1-set$flops" "layered1-rigl$flops"
