"""`ferflow batch`: a whole image or video archive to a Parquet dataset, on Ray Data.

plan.py turns sources into work units, store.py owns the output folder, worker.py is the
actor that runs the app's recognizer, run.py drives Ray Data, cli.py is the command. Only
worker.py and run.py import Ray (the `ray` extra); the rest runs on the base install.
"""
