"""Checkpoint files every part reads: the file format (atomic writes, checked loads), the serving
export (the translator's writer and reader) and where a served checkpoint comes from (local or s3://).

The training-state checkpoints live beside their writers: the single-process one in
training/checkpoint.py, the DeepSpeed one (sharded, one folder per step) in distributed/checkpoint.py.
"""
