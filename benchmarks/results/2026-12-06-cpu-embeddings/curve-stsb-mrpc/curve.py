"""Side experiment (issue 57): STS-B dev Spearman and MRPC dev AP over steps, STS-B (CoSENT) + MRPC train labelled 0/1 (CoSENT)."""
import json
import sys
import time

from datasets import DatasetDict
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, evaluation, losses

from small_encoders.data_prep import pairs
from small_encoders.eval.glue_data import load_glue
from small_encoders.recipes import train_embeddings as te

steps, lr, bf16, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "bf16", sys.argv[4]
glue = "/work/shared/data/glue"
model = te.build_embedder("/work/shared/gpu-runs/2026-12-04-h200-tuned-20m/model", 64, "mean", True)
stsb, _ = pairs.glue_pairs("stsb", glue)
mrpc = load_glue("mrpc", glue, splits=["train"])["train"].rename_column("label", "score")
mrpc = mrpc.map(lambda r: {"score": float(r["score"])}).select_columns(["sentence1", "sentence2", "score"])
sets = DatasetDict({"stsb": stsb, "mrpc": mrpc}) if "mrpc" in sys.argv[5:] else stsb
loss = losses.CoSENTLoss(model)
dev = load_glue("stsb", glue, splits=["validation"])["validation"]
md = load_glue("mrpc", glue, splits=["validation"])["validation"]
ev = evaluation.SequentialEvaluator([
    evaluation.EmbeddingSimilarityEvaluator(dev["sentence1"], dev["sentence2"], [s / 5 for s in dev["label"]], name="stsb"),
    evaluation.BinaryClassificationEvaluator(md["sentence1"], md["sentence2"], md["label"], name="mrpc")])
args = SentenceTransformerTrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=64, learning_rate=lr,
    warmup_ratio=0.1, bf16=bf16, batch_sampler="no_duplicates", eval_strategy="steps", eval_steps=100, save_strategy="no",
    logging_steps=50, report_to="none", use_cpu=True, seed=42, data_seed=42, dataloader_drop_last=True)
t = SentenceTransformerTrainer(model=model, args=args, train_dataset=sets, loss={"stsb": loss, "mrpc": loss} if isinstance(sets, DatasetDict) else loss, evaluator=ev)
started = time.time()
t.train()
print("seconds", time.time() - started)
json.dump(t.state.log_history, open(out + "/log.json", "w"), indent=1)
