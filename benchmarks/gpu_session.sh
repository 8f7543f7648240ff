#!/usr/bin/env bash
# One GPU slot (about 10 minutes on one GPU) turned into measured results, with no hand work.
#
#   bash benchmarks/gpu_session.sh reference   # tuned-20m: 4 min pretraining + the suite's gpu protocol (GLUE-5 vs
#                                              # floor), 9.5 min in all
#   bash benchmarks/gpu_session.sh seeds       # miniroberta, bertmini, neobert-mini, coberta side by side, 4 min
#                                              # each, then SST-2 and perplexity for each, 9.5 min
#   bash benchmarks/gpu_session.sh speed       # the speed levers one by one for tuned-20m and bertmini (tokens/s,
#                                              # step time, peak memory, MFU), then tuned-20m as trained for 1.5
#                                              # minutes as shipped and as before the levers, about 8 min
#   SMOKE=1 bash benchmarks/gpu_session.sh seeds   # the same at smoke size on a CPU (checks the script: 6.4 min
#                                                  # on a loaded 2-core CPU)
#
# On the project's GPU tool: first `bash benchmarks/gpu_carry.sh MODE` here (it assembles gpu-data/ and says how to
# carry the wheels), then run "DATA=gpu-data PACK_TO=$OUT bash benchmarks/gpu_session.sh MODE" with carry
# ["gpu-data", ".whl"] and a timeout of 600 s.
# Reads local data only (a GPU machine may have no network): DATA (default ../shared/data) holds glue/,
# wikitext-2/, tokenizers/ and pretrain-corpus/ (this project's stand-ins for the Hub corpora). Python wheels in
# .whl/ (datasets and what it needs, where the machine lacks them) are installed first. Runs under RUNS (default
# runs/gpu-session); with PACK_TO (the device tool's $OUT) it also leaves there, in at most 8 files of under
# 16 MiB: results.json, summary.md, run.tar.gz (every run folder without weights and scratch: logs, each model's
# results.json, recipe.yaml, training_log.json, tokenizer, the suite's results) and, for `reference`, the
# weights in bf16 split into 15 MB pieces (weights-bf16.part-*; `cat` them back into model.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: benchmarks/gpu_session.sh reference|seeds|speed}
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs/gpu-session}
OUT="$RUNS"
CORPUS="$DATA/pretrain-corpus"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
SMOKE_FLAG=()
if [ "${SMOKE:-0}" = 1 ]; then SMOKE_FLAG=(--smoke); fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
python3 -c "import torch, transformers, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'cuda', torch.cuda.is_available())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

case "$MODE" in
reference)
    # The recipe as shipped on the books and Wikipedia parts of the local corpus; its tokenizer is trained there
    # too (seconds on 16 cores) unless TOKENIZER names one trained beforehand.
    # A 4-minute budget (BUDGET) leaves the suite its 4 minutes inside the 9.5 (WALL): loading, the tokenizer's
    # training and the final evaluation take about a minute and a half besides.
    python3 benchmarks/reference_run.py --recipe tuned-20m --data_dir "$DATA" --output_dir "$OUT/reference" \
        --wall_minutes "${WALL:-9.5}" "${SMOKE_FLAG[@]}" $([ "${SMOKE:-0}" = 1 ] || echo --time_budget "${BUDGET:-4}") \
        --train_files "$CORPUS/books/*.txt.gz,$CORPUS/wikipedia/*.txt.gz" \
        --validation_files "$DATA/wikitext-2/valid.txt" --eval_steps 100000 --save_steps 100000 \
        ${TOKENIZER:+--tokenizer_name "$TOKENIZER"}
    ;;
seeds)
    # The seed recipes' shapes and settings, each on the local stand-in for its corpus: miniroberta on WikiText
    # (the 2-million-word WikiText-2 instead of WikiText-103), bertmini on the Gutenberg books with whole books held
    # out (perplexity on books it never saw), neobert-mini and coberta on Wikipedia (coberta trains its own
    # 35,000-entry BPE there: Cosmopedia is not local).
    python3 benchmarks/reference_run.py --recipes miniroberta,bertmini,neobert-mini,coberta --concurrent \
        --time_budget "${BUDGET:-4}" --wall_minutes "${WALL:-9.5}" "${SMOKE_FLAG[@]}" \
        --tasks sst2 --skip stsb_zero_shot,mmlu --data_dir "$DATA" --output_dir "$OUT/seeds" \
        --eval_steps 100000 --save_steps 100000 \
        --miniroberta.train_files "$DATA/wikitext-2/train.txt" --miniroberta.validation_files "$DATA/wikitext-2/valid.txt" \
        --miniroberta.tokenizer_name "$DATA/tokenizers/roberta-base" \
        --bertmini.train_files "$CORPUS/books/*.txt.gz" --bertmini.text_sample_by document \
        --bertmini.validation_split_percentage 5 --bertmini.tokenizer_name "$DATA/tokenizers/bert-base-uncased" \
        --neobert-mini.train_files "$CORPUS/wikipedia/*.txt.gz" --neobert-mini.validation_files "$DATA/wikitext-2/valid.txt" \
        --neobert-mini.tokenizer_name "$DATA/tokenizers/bert-base-uncased" \
        --coberta.train_files "$CORPUS/wikipedia/*.txt.gz" --coberta.validation_files "$DATA/wikitext-2/valid.txt" \
        --coberta.cosmopedia_filter null
    ;;
speed)
    # The lever ladder (benchmarks/pretrain_throughput.py --ladder) of tuned-20m (its own 16,384-entry WordPiece) and of
    # bertmini (BERT's vocabulary) at the recipes' batch 256, then tuned-20m trained for BUDGET minutes on the books and
    # Wikipedia as shipped (compile and collation workers: auto, on) and as before the levers (both off).
    mkdir -p "$OUT/speed"
    TOK=${TOKENIZER:-$DATA/tokenizers/tuned-20m}
    BUDGET=${BUDGET:-1.5}
    LADDER=(--batch_size 256 --steps 20 --rounds 3 --warmup 3 --workers 4)
    RECIPE=(--time_budget "$BUDGET" --eval_steps 100000 --save_steps 100000 --report_to none --overwrite_output_dir true)
    if [ "${SMOKE:-0}" = 1 ]; then
        LADDER=(--batch_size 8 --block_size 64 --steps 2 --rounds 1 --warmup 1 --workers 1 --ladder_paths stock,before,rmsnorm,workers)
        RECIPE=(--smoke --max_steps 4 --report_to none --overwrite_output_dir true)
    fi
    BF16=$(python3 -c "import torch; print('--bf16' if torch.cuda.is_available() else '')")
    for shape in tuned-20m bertmini; do
        tokenizer=$TOK; [ "$shape" = bertmini ] && tokenizer=$DATA/tokenizers/bert-base-uncased
        python3 benchmarks/pretrain_throughput.py --ladder --shape "$shape" $BF16 "${LADDER[@]}" --skip_data_prep \
            --corpus "$DATA/wikitext-2/valid.txt" --tokenizer "$tokenizer" --json_out "$OUT/speed/ladder-$shape.json" \
            2>&1 | tee "$OUT/speed/ladder-$shape.txt"
    done
    for variant in shipped before; do
        extra=(); [ "$variant" = before ] && extra=(--torch_compile false --dataloader_num_workers 0 --streaming false)
        python3 recipes/pretrain_mlm.py --recipe tuned-20m "${RECIPE[@]}" "${extra[@]}" --tokenizer_name "$TOK" \
            --train_files "$CORPUS/books/*.txt.gz,$CORPUS/wikipedia/*.txt.gz" --validation_files "$DATA/wikitext-2/valid.txt" \
            --output_dir "$OUT/speed/recipe-$variant" 2>&1 | tee "$OUT/speed/recipe-$variant.log" | grep -v "it/s\]" || true
    done
    python3 benchmarks/speed_summary.py "$OUT/speed"
    ;;
*)
    echo "error: MODE must be reference, seeds or speed, got $MODE" >&2
    exit 2
    ;;
esac
[ "$MODE" = speed ] || python3 benchmarks/results_table.py "$OUT/$MODE" | tee "$OUT/$MODE/table.md"
if [ -n "${PACK_TO:-}" ]; then
    mkdir -p "$PACK_TO"
    cp "$OUT/$MODE/results.json" "$OUT/$MODE/summary.md" "$PACK_TO/"
    tar czf "$PACK_TO/run.tar.gz" --exclude='*.safetensors' --exclude=scratch --exclude='checkpoint-*' -C "$OUT" "$MODE"
    if [ "$MODE" = reference ] && [ -f "$OUT/reference/tuned-20m/model/model.safetensors" ]; then
        python3 - "$OUT/reference/tuned-20m/model/model.safetensors" "$OUT/weights-bf16.safetensors" <<'PY'
import sys
import torch
from safetensors.torch import load_file, save_file
save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(sys.argv[1]).items()}, sys.argv[2],
          metadata={"format": "pt"})
PY
        split -b 15M "$OUT/weights-bf16.safetensors" "$PACK_TO/weights-bf16.part-"
    fi
    ls -la "$PACK_TO"
fi
