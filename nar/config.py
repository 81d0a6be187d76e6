"""Run configuration: three plain sections (model, train, eval) read from TOML files and `--set key=value`.

Files under `configs/` are readable TOML; flags override files; an unknown key or a bad value is a `ValueError`
that names it. Defaults follow CLRS (Ibarz et al. 2022).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from nar.data import CLRS_TRAIN_SIZES, GRAPH_FAMILIES
from nar.model.net import ModelConfig

GATE_PENALTIES = ("none", "magnitude", "closed_loss")
# How training sizes are mixed: "per_batch" is CLRS's protocol (each batch drawn at one size, the sizes cycled from
# batch to batch, as dm-clrs's `cycle_samplers`); "per_sample" cycles the sizes inside every batch.
SIZE_MIXES = ("per_batch", "per_sample")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 10_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    grad_clip: float = 1.0
    seed: int = 42
    sizes: tuple[int, ...] = CLRS_TRAIN_SIZES
    size_mix: str = "per_batch"
    random_pos: bool = True
    eval_every: int = 50
    val_samples: int = 64
    val_size: int = 16
    checkpoint_every: int = 500
    log_every: int = 10
    pad_lookahead: int = 32  # start padded to cover the first K batches (one compile, not one per growth); 0: off
    # G-ForgetNet's gate penalty: "magnitude" adds w * mean gate; "closed_loss" adds w * (the loss with the gate
    # shut). The weight w ramps linearly from 0 over the first gate_penalty_warmup steps.
    gate_penalty: str = "none"
    gate_penalty_weight: float = 0.1
    gate_penalty_warmup: int = 0

    def __post_init__(self):
        for key in ("steps", "batch_size", "eval_every", "val_samples", "val_size", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be positive, got {getattr(self, key)}")
        if self.pad_lookahead < 0:
            raise ValueError(f"train.pad_lookahead must be >= 0, got {self.pad_lookahead}")
        if self.learning_rate <= 0 or self.grad_clip <= 0:
            raise ValueError(f"train.learning_rate and train.grad_clip must be positive, got "
                             f"{self.learning_rate} and {self.grad_clip}")
        if not self.sizes or any(n < 2 for n in self.sizes):
            raise ValueError(f"train.sizes must be sizes >= 2, got {self.sizes}")
        if self.size_mix not in SIZE_MIXES:
            raise ValueError(f"train.size_mix must be one of {SIZE_MIXES}, got {self.size_mix!r}")
        if self.gate_penalty not in GATE_PENALTIES:
            raise ValueError(f"train.gate_penalty must be one of {GATE_PENALTIES}, got {self.gate_penalty!r}")
        if self.gate_penalty_weight < 0 or self.gate_penalty_warmup < 0:
            raise ValueError(f"train.gate_penalty_weight and train.gate_penalty_warmup must be >= 0, got "
                             f"{self.gate_penalty_weight} and {self.gate_penalty_warmup}")

    def penalty_weight(self, step: int) -> float:
        """The gate penalty's weight at `step` (0 without a penalty)."""
        if self.gate_penalty == "none":
            return 0.0
        ramp = min(1.0, step / self.gate_penalty_warmup) if self.gate_penalty_warmup else 1.0
        return self.gate_penalty_weight * ramp


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    sizes: tuple[int, ...] = (16, 64, 256, 1024)
    samples: int = 32
    seed: int = 3  # CLRS's test seed: at n=64 on 'er' graphs this is CLRS30's test split, bit for bit
    graph: str = "auto"  # 'auto': CLRS's ER graphs up to n=64, sparse_er beyond; or any graph family
    degree: float = 5.0  # sparse_er's expected degree
    max_edges_per_batch: int = 1 << 20
    batch_size: int = 32
    closed_gate: bool = False  # G-ForgetNet: validate and test with the history gate shut (pure Markov)

    def __post_init__(self):
        if not self.sizes or any(n < 2 for n in self.sizes):
            raise ValueError(f"eval.sizes must be sizes >= 2, got {self.sizes}")
        if self.graph != "auto" and self.graph not in GRAPH_FAMILIES:
            raise ValueError(f"eval.graph must be 'auto' or one of {', '.join(GRAPH_FAMILIES)}, got {self.graph!r}")
        for key in ("samples", "max_edges_per_batch", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"eval.{key} must be positive, got {getattr(self, key)}")

    def family(self, n: int) -> str:
        """The graph family of the test set at size n ('auto': CLRS's ER up to n = 64, sparse_er beyond)."""
        return ("er" if n <= 64 else "sparse_er") if self.graph == "auto" else self.graph


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def __post_init__(self):
        gated = self.model.processor == "g_forgetnet"
        if self.train.gate_penalty != "none" and not gated:
            raise ValueError(f"train.gate_penalty={self.train.gate_penalty!r} needs model.processor = "
                             f"'g_forgetnet' (the only processor with a history gate), got {self.model.processor!r}")
        if self.eval.closed_gate and not gated:
            raise ValueError(f"eval.closed_gate needs model.processor = 'g_forgetnet', got "
                             f"{self.model.processor!r}")

    def to_dict(self) -> dict:
        """{section: {key: value}} with lists for tuples (what `from_dict` and the TOML writer take)."""
        return {s: _plain(dataclasses.asdict(getattr(self, s))) for s in ("model", "train", "eval")}

    def to_toml(self) -> str:
        """The config as TOML text, readable by `load` (a run folder's config.toml)."""
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
            lines.append("")
        return "\n".join(lines)


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _coerce(section: str, key: str, value: Any, field: dataclasses.Field) -> Any:
    """Check a value against the field's declared type and convert (lists -> tuples, ints -> floats)."""
    kind = str(field.type)
    name = f"{section}.{key}"
    if value is None and "None" in kind:
        return None
    if kind.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in value):
            raise ValueError(f"{name} must be a list of integers, got {value!r}")
        return tuple(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def from_dict(data: dict, base: Config | None = None) -> Config:
    """Overlay a nested {section: {key: value}} dict on `base` (default: CLRS defaults)."""
    base = base or Config()
    sections = {}
    for section, cls in SECTIONS.items():
        values = dataclasses.asdict(getattr(base, section))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        given = data.get(section) or {}
        if not isinstance(given, dict):
            raise ValueError(f"config section [{section}] must be a table of keys, got {given!r}")
        for key, value in given.items():
            if key not in fields:
                raise ValueError(f"unknown config key {section}.{key}; valid keys: "
                                 f"{', '.join(f'{section}.{k}' for k in fields)}")
            values[key] = _coerce(section, key, value, fields[key])
        sections[section] = cls(**values)
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown config section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    return Config(**sections)


def parse_set(items: list[str]) -> dict:
    """`["train.steps=100", "model.processor=pgn"]` -> nested dict; values are TOML (strings may be bare)."""
    data: dict = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        dotted, raw = item.split("=", 1)
        section, key = dotted.strip().split(".", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string such as pgn
        data.setdefault(section, {})[key] = value
    return data


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """A TOML file as a dict; a missing or malformed file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} {path} is not valid TOML: {e}") from None


def load(path: str | Path | None = None, overrides: list[str] | None = None, **sections) -> Config:
    """A config from a TOML file (optional), then `sections` (dicts), then `--set` overrides, in that order."""
    data = {} if path is None else read_toml(path)
    config = from_dict(data)
    for extra in (sections, parse_set(overrides or [])):
        config = from_dict(extra, config)
    return config
