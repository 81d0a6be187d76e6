"""Run configuration: three plain sections (model, train, eval) read from TOML files and `--set key=value`.

A config is a TOML file or a name, ALGORITHM/PROCESSOR, composed from small files shipped in the package
(`nar/configs/`: the CLRS protocol in default.toml, then the processor's and the algorithm's changes; `compose`).
Flags override either; an unknown key or a bad value is a `ValueError` that names it. Defaults follow CLRS
(Ibarz et al. 2022).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from nar.data import CLRS_TRAIN_SIZES, GRAPH_FAMILIES
from nar.model.net import ModelConfig
from nar.processors import PROCESSORS
from nar.specs import SPECS

GATE_PENALTIES = ("none", "magnitude", "closed_loss")
# How training sizes are mixed: "per_batch" is CLRS's protocol (each batch drawn at one size, the sizes cycled from
# batch to batch, as dm-clrs's `cycle_samplers`); "per_sample" cycles the sizes inside every batch.
SIZE_MIXES = ("per_batch", "per_sample")
# Grokfast's slow-gradient filters (nar.grokfast) and where they go relative to gradient clipping.
GROKFAST = ("none", "ema", "ma")
GROKFAST_ORDERS = ("clip_first", "filter_first")
# Causal regularisers of the processor's node states (nar.training.causal, docs/causal_reg.md).
CAUSAL_REGS = ("none", "hint_relic")


@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: finite, at least `low` (above it when `above`), at most `high`."""

    low: float
    high: float = math.inf
    above: bool = False

    def holds(self, x: float) -> bool:
        finite = isinstance(x, int) or math.isfinite(x)  # (an int may be too large for a float)
        return finite and (x > self.low if self.above else x >= self.low) and x <= self.high

    def __str__(self) -> str:
        if self.high < math.inf:
            return f"in [{self.low}, {self.high}]"
        return f"{'>' if self.above else '>='} {self.low}"


SEED = Range(0, 2**31 - 1)
# Every numeric key's valid range, in one place (lists of sizes: every element). A value outside it, NaN or
# infinity is a ValueError naming the key, its value and this range (`check_ranges`).
RANGES = {
    "model.hidden": Range(1), "model.teacher_forcing": Range(0, 1), "model.sinkhorn_steps": Range(1),
    "model.sinkhorn_eval_steps": Range(1), "model.sinkhorn_temperature": Range(0, above=True),
    "model.triplet_features": Range(1), "model.heads": Range(1), "model.fsa_states": Range(0),
    "model.fsa_bound": Range(1),
    "train.steps": Range(1), "train.batch_size": Range(1), "train.learning_rate": Range(0, above=True),
    "train.grad_clip": Range(0, above=True), "train.seed": SEED, "train.sizes": Range(2), "train.eval_every": Range(1),
    "train.val_samples": Range(1), "train.val_size": Range(1), "train.checkpoint_every": Range(1),
    "train.log_every": Range(1), "train.pad_lookahead": Range(0), "train.gate_penalty_weight": Range(0),
    "train.gate_penalty_warmup": Range(0), "train.grokfast_alpha": Range(0, 1), "train.grokfast_ema_lambda": Range(0),
    "train.grokfast_window": Range(1), "train.grokfast_ma_lambda": Range(0),
    "train.causal_reg_weight": Range(0), "train.causal_reg_tau": Range(0, above=True),
    "train.causal_reg_alpha": Range(0),
    "eval.sizes": Range(2), "eval.samples": Range(1), "eval.seed": SEED, "eval.degree": Range(0),
    "eval.max_edges_per_batch": Range(1), "eval.batch_size": Range(1),
}


def check_ranges(section: str, values) -> None:
    """ValueError naming the first numeric key of `values` (a section's dataclass) that is of the wrong type or
    outside its `RANGES` entry."""
    for field in dataclasses.fields(values):
        _check_range(f"{section}.{field.name}", str(field.type), getattr(values, field.name))


def _check_range(key: str, kind: str, value: Any) -> None:
    valid = RANGES.get(key)
    if valid is None:
        return
    if kind.startswith("tuple"):
        if not (isinstance(value, tuple) and value and all(_is_int(x) and valid.holds(x) for x in value)):
            raise ValueError(f"{key} must be a non-empty list of integers {valid}, got {value!r}")
    elif not ((_is_int(value) if kind == "int" else _is_number(value)) and valid.holds(value)):
        raise ValueError(f"{key} must be {'an integer' if kind == 'int' else 'a finite number'} {valid}, "
                         f"got {value!r}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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
    # Grokfast (Lee et al. 2024): the gradient plus lambda times its slow part, before Adam. "ema": an exponential
    # average (alpha, lambda = grokfast_ema_lambda); "ma": the mean of the last grokfast_window gradients (lambda =
    # grokfast_ma_lambda); the paper's defaults. "clip_first" filters the clipped gradient (the authors' order).
    grokfast: str = "none"
    grokfast_order: str = "clip_first"
    grokfast_alpha: float = 0.98
    grokfast_ema_lambda: float = 2.0
    grokfast_window: int = 100
    grokfast_ma_lambda: float = 5.0
    # Hint-ReLIC (Bevilacqua et al. 2023): a contrastive loss tying each node's state after step t to its state in
    # an augmented input whose hints up to t + 1 are certified equal (docs/causal_reg.md). The paper's weight,
    # temperature and KL weight are not public: these defaults are ours (ReLIC-like tau and alpha, weight 0.1).
    causal_reg: str = "none"
    causal_reg_weight: float = 0.1
    causal_reg_tau: float = 0.1
    causal_reg_alpha: float = 1.0

    def __post_init__(self):
        check_ranges("train", self)
        if self.size_mix not in SIZE_MIXES:
            raise ValueError(f"train.size_mix must be one of {SIZE_MIXES}, got {self.size_mix!r}")
        if self.gate_penalty not in GATE_PENALTIES:
            raise ValueError(f"train.gate_penalty must be one of {GATE_PENALTIES}, got {self.gate_penalty!r}")
        if self.grokfast not in GROKFAST:
            raise ValueError(f"train.grokfast must be one of {GROKFAST}, got {self.grokfast!r}")
        if self.grokfast_order not in GROKFAST_ORDERS:
            raise ValueError(f"train.grokfast_order must be one of {GROKFAST_ORDERS}, got {self.grokfast_order!r}")
        if self.causal_reg not in CAUSAL_REGS:
            raise ValueError(f"train.causal_reg must be one of {CAUSAL_REGS}, got {self.causal_reg!r}")

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
        check_ranges("eval", self)
        if self.graph != "auto" and self.graph not in GRAPH_FAMILIES:
            raise ValueError(f"eval.graph must be 'auto' or one of {', '.join(GRAPH_FAMILIES)}, got {self.graph!r}")

    def family(self, n: int) -> str:
        """The graph family of the test set at size n ('auto': CLRS's ER up to n = 64, sparse_er beyond)."""
        return ("er" if n <= 64 else "sparse_er") if self.graph == "auto" else self.graph


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def __post_init__(self):
        check_ranges("model", self.model)  # ModelConfig (nar.model.net) checks its names and options itself
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
    """Check a value against the field's declared type and range and convert (lists -> tuples, ints -> floats)."""
    kind = str(field.type)
    name = f"{section}.{key}"
    if value is None and "None" in kind:
        return None
    if kind.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(_is_int(x) for x in value):
            raise ValueError(f"{name} must be a list of integers, got {value!r}")
        value = tuple(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif kind == "int":
        if not _is_int(value):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    elif kind == "float":
        if not _is_number(value) or (isinstance(value, int) and abs(value) > sys.float_info.max):
            raise ValueError(f"{name} must be a finite number, got {value!r}")  # (that int would overflow float())
        if isinstance(value, int) and float(value) != value:  # rounding it would change the value silently
            raise ValueError(f"{name} must be a number a float holds exactly, got {value!r}")
        value = float(value)
    elif not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    _check_range(name, kind, value)  # here, before the section's own checks, so the message names the key
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


def read_toml(path, what: str = "config file") -> dict:
    """A TOML file (a path, or a `CONFIG_DATA` file) as a dict; a missing or malformed file is a ValueError naming
    it."""
    path = Path(path) if isinstance(path, str) else path
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} {path} is not valid TOML: {e}") from None


def load_run_config(path) -> Config:
    """The config a run folder's config.toml holds. A run saved before `model.pointer_encoding` existed encoded its
    pointers on the child's edge, so its missing key reads as "child", not today's default: its parameters mean
    that encoding."""
    data = read_toml(path, "run config")
    if isinstance(data.get("model"), dict) and "pointer_encoding" not in data["model"]:
        data["model"]["pointer_encoding"] = "child"
    return from_dict(data)


# The configs shipped with the package (package data, so an installed nar finds them from any directory).
CONFIG_DATA = resources.files("nar") / "configs"


def is_name(source: str | Path) -> bool:
    """Whether `source` names a shipped config (or suite) rather than a file: a string that is neither a .toml
    path nor an existing file. A path therefore still works wherever a name does."""
    return isinstance(source, str) and not source.endswith(".toml") and not Path(source).exists()


def _known(value: str, known, what: str) -> str:
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(known)}")
    return value


def _delta(*parts: str) -> dict:
    """A shipped file's keys ({} where there is none: that name changes nothing)."""
    path = CONFIG_DATA.joinpath(*parts)
    return read_toml(path) if path.is_file() else {}


def compose(algorithm: str, processor: str) -> Config:
    """The config of ALGORITHM/PROCESSOR: default.toml, then processors/<processor>.toml, then
    algorithms/<algorithm>.toml with its [processors.<processor>] tables (what changes for that pair only).
    Algorithms and processors registered at run time compose too, from the defaults."""
    _known(algorithm, SPECS, "algorithm")
    _known(processor, PROCESSORS, "processor")
    own = _delta("algorithms", f"{algorithm}.toml")
    pair = own.pop("processors", {}).get(processor, {})
    data: dict = {}
    for layer in (_delta("default.toml"), _delta("processors", f"{processor}.toml"), own, pair,
                  {"model": {"algorithm": algorithm, "processor": processor}}):
        for section, values in layer.items():
            data.setdefault(section, {}).update(values)
    return from_dict(data)


def named(name: str) -> Config:
    """The config a name gives: ALGORITHM/PROCESSOR, or ALGORITHM alone (with the default processor)."""
    algorithm, _, processor = name.partition("/")
    if not algorithm or "/" in processor:
        raise ValueError(f"a config is a TOML file or a name ALGORITHM/PROCESSOR (e.g. bfs/mpnn), got {name!r}")
    return compose(algorithm, processor or ModelConfig.processor)


def load(source: str | Path | Config | None = None, overrides: list[str] | None = None, **sections) -> Config:
    """A config from a TOML file, a name (`named`) or a `Config` (optional), then `sections` (dicts), then `--set`
    overrides, in that order."""
    if source is None:
        config = Config()
    elif isinstance(source, Config):
        config = source
    else:
        config = named(source) if is_name(source) else from_dict(read_toml(source))
    for extra in (sections, parse_set(overrides or [])):
        config = from_dict(extra, config)
    return config
