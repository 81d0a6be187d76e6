"""A run directory's files: `config.toml` (the run's config), `metrics.jsonl` (one strict-JSON record per line),
`checkpoints/` (`nar.checkpoint`), plus `summary.json` and the timing file. Here: whether a directory may be
started or resumed with a config, and the metrics records (written, and cut back to a checkpoint on resume)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from nar.checkpoint import write_atomic
from nar.config import Config, load_run_config

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
# Keys that may change when a run is resumed (extending a run, or logging differently).
RESUMABLE_CHANGES = {"train.steps", "train.log_every", "eval.sizes", "eval.samples", "eval.graph", "eval.degree",
                     "eval.max_edges_per_batch", "eval.batch_size", "eval.seed"}


def config_diff(a: dict, b: dict) -> list[str]:
    """The 'section.key' names whose values differ between two config dicts (`Config.to_dict`)."""
    keys = {(s, k) for d in (a, b) for s in d for k in d[s]}
    return sorted(f"{s}.{k}" for s, k in keys if a.get(s, {}).get(k) != b.get(s, {}).get(k))


def check_run_dir(config: Config, out: Path, resume: bool) -> None:
    """Refuse what would lose or mix runs: resuming where there is no run (FileNotFoundError) or with a config
    that differs beyond `RESUMABLE_CHANGES` (ValueError), starting afresh where a run already is
    (FileExistsError)."""
    ckpt_dir, config_path = out / CHECKPOINTS, out / CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise FileNotFoundError(f"cannot resume: {config_path} does not exist (no run in {out})")
        saved = load_run_config(config_path).to_dict()
        changed = [k for k in config_diff(saved, config.to_dict()) if k not in RESUMABLE_CHANGES]
        if changed:
            raise ValueError(f"cannot resume {out}: the config differs from the saved run in {', '.join(changed)}")
    elif config_path.exists() or (ckpt_dir.exists() and any(ckpt_dir.iterdir())):
        raise FileExistsError(f"{out} already holds a run; pass resume=True (--resume) to continue it "
                              f"or choose another directory")


def strict(record: dict) -> dict:
    """`record` with its non-finite floats (a NaN score, the -inf best score before any validation) as None, so
    that it is valid JSON (null)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def append_record(log, record: dict) -> None:
    """Append one metrics record (strict JSON, a line) to the open metrics file `log`."""
    log.write(json.dumps(strict(record), allow_nan=False) + "\n")
    log.flush()  # readable while the run goes on (`tail -f metrics.jsonl`)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records after `step` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a half-written last line of a killed run
            continue
        if record["step"] <= step:
            keep.append(line)
    write_atomic(path, "".join(line + "\n" for line in keep))
