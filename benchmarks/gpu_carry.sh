#!/usr/bin/env bash
# Assemble what benchmarks/gpu_session.sh MODE reads into gpu-data/ (git-ignored), small enough for the project's GPU
# tool: it carries at most 64 MiB per call, working tree and carried folders together.
#
#   bash benchmarks/gpu_carry.sh reference     # books + Wikipedia, GLUE-5 + WNLI, WikiText-2 valid, MMLU val (~59 MB)
#   bash benchmarks/gpu_carry.sh seeds         # books + 12 of 16 Wikipedia parts, SST-2, WikiText-2, two tokenizers
#   bash benchmarks/gpu_carry.sh speed         # books + Wikipedia, WikiText-2 valid, tuned-20m's and BERT's tokenizers
#
# Then, on the GPU tool: command "DATA=gpu-data PACK_TO=$OUT bash benchmarks/gpu_session.sh MODE", carry
# ["gpu-data", ".whl"]. .whl/ holds the wheels the machine lacks (datasets and what it needs), fetched beforehand with
# python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#   --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#   datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19        (and `echo /.whl/ >> .git/info/exclude`)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: benchmarks/gpu_carry.sh reference|seeds|speed}
SRC=${DATA:-../shared/data}
DEST=gpu-data
rm -rf "$DEST"
mkdir -p "$DEST/pretrain-corpus" "$DEST/glue" "$DEST/wikitext-2"
cp -r "$SRC/pretrain-corpus/books" "$DEST/pretrain-corpus/"
case "$MODE" in
reference)
    cp -r "$SRC/pretrain-corpus/wikipedia" "$DEST/pretrain-corpus/"
    for task in CoLA SST-2 MRPC STS-B RTE WNLI; do cp -r "$SRC/glue/$task" "$DEST/glue/"; done
    cp "$SRC/wikitext-2/valid.txt" "$DEST/wikitext-2/"
    mkdir -p "$DEST/mmlu" && cp -r "$SRC/mmlu/val" "$DEST/mmlu/"
    ;;
seeds)
    mkdir -p "$DEST/pretrain-corpus/wikipedia"
    find "$SRC/pretrain-corpus/wikipedia" -name '*.txt.gz' | sort | head -12 | xargs -I{} cp {} "$DEST/pretrain-corpus/wikipedia/"
    cp -r "$SRC/glue/SST-2" "$DEST/glue/"
    cp "$SRC/wikitext-2/train.txt" "$SRC/wikitext-2/valid.txt" "$DEST/wikitext-2/"
    mkdir -p "$DEST/tokenizers"
    cp -r "$SRC/tokenizers/bert-base-uncased" "$SRC/tokenizers/roberta-base" "$DEST/tokenizers/"
    rm -f "$DEST/tokenizers/roberta-base/dict.txt"  # fairseq's copy of the vocabulary; transformers reads the others
    ;;
speed)
    cp -r "$SRC/pretrain-corpus/wikipedia" "$DEST/pretrain-corpus/"
    cp "$SRC/wikitext-2/valid.txt" "$DEST/wikitext-2/"
    mkdir -p "$DEST/tokenizers/tuned-20m"
    cp -r "$SRC/tokenizers/bert-base-uncased" "$DEST/tokenizers/"
    # The 16,384-entry WordPiece of the first H200 run (trained on these files), so both runs skip its training.
    cp "$SRC/../gpu-runs/2026-12-04-h200-tuned-20m/model/"tokenizer*.json "$DEST/tokenizers/tuned-20m/"
    ;;
*)
    echo "error: MODE must be reference, seeds or speed, got $MODE" >&2
    exit 2
    ;;
esac
chmod -R u+w "$DEST"
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '/total$/ {s += $1} END {print s}')
data=$(du -sb "$DEST" | cut -f1)
wheels=$(du -sb .whl 2>/dev/null | cut -f1 || echo 0)
total=$((tree + data + ${wheels:-0}))
echo "gpu-data/ ($MODE): $data bytes; working tree $tree; .whl ${wheels:-0}; together $total of 67108864 (64 MiB)"
if [ "$total" -gt 67108864 ]; then echo "error: over the 64 MiB a call carries" >&2; exit 1; fi
