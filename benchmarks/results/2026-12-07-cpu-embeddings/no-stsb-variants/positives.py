"""MRPC train's paraphrases and RTE train's entailed pairs as anchor,positive rows (2,474 + 1,249), for a labelled
ingredient trained with in-batch negatives (MultipleNegativesRankingLoss) instead of CoSENT on all the scored pairs.

    python positives.py ../shared/data/glue runs/nostsb-v/positives.csv
"""
import csv
import sys
from pathlib import Path

if __name__ == "__main__":
    glue, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = []
    with open(glue / "MRPC" / "train.tsv", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        rows += [(a, b) for quality, _, _, a, b in reader if quality == "1"]
    with open(glue / "RTE" / "train.tsv", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        rows += [(a, b) for _, a, b, label in reader if label == "entailment"]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["anchor", "positive"])
        writer.writerows(rows)
    print(f"{len(rows):,} positive pairs -> {out}")
