"""The uniform soup of N finished ingredients (every floating-point weight the mean of theirs), by the recipe's own
averaging (average_embedders), saved as a sentence-transformers folder.

    python soup.py OUT FOLDER_A FOLDER_B [FOLDER_C ...]
"""
import sys

from small_encoders.recipes.train_embeddings import average_embedders

if __name__ == "__main__":
    out, *folders = sys.argv[1:]
    average_embedders(folders).save(out)
    print(f"the mean of {', '.join(folders)} -> {out}")
