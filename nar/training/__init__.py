"""The parts `nar.train.Trainer` is built from, one concern per module: `data` (training and validation batches,
their padded shapes, the prefetch thread), `optimizer` (the optimiser a run trains with), `run_dir` (a run
directory's files: config, metrics, resume checks), `progress` (the progress line) and `signals` (stopping at a
step boundary on SIGINT / SIGTERM). `nar.train` re-exports what was public there."""
