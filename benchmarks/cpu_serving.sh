#!/usr/bin/env bash
# The CPU serving measurements of docs/performance.md#cpu-serving (issue 58), one command on the machine to measure:
#
#   bash benchmarks/cpu_serving.sh                       # all three models
#   MODELS="classifier" bash benchmarks/cpu_serving.sh   # some of them: classifier, stock-bert, embedder
#
# 1. classifier: the H200 tuned-20m fine-tuned on SST-2 (20,000 sentences, one epoch: docs/performance.md's model),
# 2. stock-bert: a stock BertForSequenceClassification of the same size (6 x 384, BERT's uncased vocabulary, 22.7M),
#    its weights untrained (speed and agreement only: its accuracy means nothing),
# 3. embedder: the sentence embedder of recipes/train_embeddings.py given as EMBEDDER (a folder), served on STS-B dev.
# Each is exported with every artefact (deploy/export.py --int8 --int8_static --openvino --ort_fusions, calibrated on
# the task's train sentences, the pick timed on held-out ones) and benchmarked with deploy/bench.py (batch 1 and 32,
# the backends taking turns for ROUNDS rounds, each round of each in a process of its own); the JSON files
# go to RESULTS. Needs the deploy extra (pip install -e ".[deploy]").
set -euo pipefail
DATA=${DATA:-../shared/data}
START=${START:-../shared/gpu-runs/2026-12-04-h200-tuned-20m/model}
WORK=${WORK:-runs/serving}
RESULTS=${RESULTS:-benchmarks/results/$(date +%F)-cpu-serving}
MODELS=${MODELS:-classifier stock-bert embedder}
ROUNDS=${ROUNDS:-3}
mkdir -p "$WORK" "$RESULTS"

export_and_bench() {  # name, model folder, calibration task, bench arguments...
    local name=$1 model=$2 task=$3
    shift 3
    python deploy/export.py --model_dir "$model" --output_dir "$WORK/$name-export" --overwrite --int8 --int8_static \
        --openvino --ort_fusions --calibration_task "$task" --data_dir "$DATA/glue" 2>&1 | grep -v "Loading weights" | tee "$RESULTS/$name-export.log"
    cp "$WORK/$name-export/export.json" "$RESULTS/$name-export.json"
    python deploy/bench.py --model_dir "$model" --onnx "$WORK/$name-export" --data_dir "$DATA/glue" --rounds "$ROUNDS" \
        --output_json "$RESULTS/$name-bench.json" "$@" 2>&1 | grep -v "Loading weights" | tee "$RESULTS/$name-bench.log"
}

for model in $MODELS; do
    case $model in
    classifier)
        if [ ! -f "$WORK/sst2-model/config.json" ]; then
            python eval/run_glue.py --model_name_or_path "$START" --task_name sst2 --data_dir "$DATA/glue" \
                --max_train_samples 20000 --num_train_epochs 1 --learning_rate 1e-4 --seeds 1 --group_by_length \
                --output_dir "$WORK/glue-sst2" --save_model "$WORK/sst2-model"
        fi
        export_and_bench classifier "$WORK/sst2-model" sst2 --task_name sst2 --profile
        python deploy/bench.py --model_dir "$WORK/sst2-model" --onnx "$WORK/classifier-export" --task_name sst2 \
            --data_dir "$DATA/glue" --rounds "$ROUNDS" --length_sorted --skip_memory \
            --output_json "$RESULTS/classifier-bench-length-sorted.json" 2>&1 | grep -v "Loading weights" \
            | tee "$RESULTS/classifier-bench-length-sorted.log"
        ;;
    stock-bert)
        if [ ! -f "$WORK/bert-6x384/config.json" ]; then
            python - "$DATA/tokenizers/bert-base-uncased" "$WORK/bert-6x384" <<'EOF'
import sys
import torch
from transformers import BertConfig, BertForSequenceClassification
from small_encoders.data_prep.tokenizer import load_tokenizer
tokenizer = load_tokenizer(sys.argv[1])  # BERT's uncased WordPiece from its vocab.txt
config = BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                    intermediate_size=1536, max_position_embeddings=512, num_labels=2)
torch.manual_seed(0)
model = BertForSequenceClassification(config)
print(f"stock BERT 6 x 384: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters (weights untrained)")
model.save_pretrained(sys.argv[2])
tokenizer.save_pretrained(sys.argv[2])
EOF
        fi
        export_and_bench stock-bert "$WORK/bert-6x384" sst2 --task_name sst2 --skip_memory
        ;;
    embedder)
        if [ -z "${EMBEDDER:-}" ]; then
            echo "embedder: set EMBEDDER=FOLDER (a recipes/train_embeddings.py folder); skipped" >&2
            continue
        fi
        export_and_bench embedder "$EMBEDDER" stsb --skip_memory
        ;;
    *) echo "unknown model $model (classifier, stock-bert, embedder)" >&2; exit 2 ;;
    esac
done
echo "results in $RESULTS"
