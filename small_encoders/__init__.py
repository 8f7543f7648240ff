"""The one name this project's distribution installs (`pip install -e .` from a clone).

The project is a clone to run: its folders (recipes/, modeling/, data_prep/, eval/, model_cards/, benchmarks/, demo/,
cli/) keep generic names that read well there (`python recipes/pretrain_mlm.py`, `python eval/run_glue.py`), and each
script puts its own clone on the import path when run. Installed as top-level packages, names like `cli`, `eval` or
`demo` would sit in site-packages beside (and collide with) other distributions' packages of the same name; so the
distribution installs only this package, whose commands (small_encoders.commands) find the clone they were installed
from and run its scripts.
"""
