"""nar: neural algorithmic reasoning on graphs, in JAX."""

from nar.algorithms import ALGORITHMS, SPECS, execute, run_batch
from nar.clrs_text import clrs_text
from nar.compare import compare_run
from nar.compile_cache import use_compile_cache
from nar.compiled import compile_model, save_compiled
from nar.config import Config, EvalConfig, TrainConfig
from nar.config import load as load_config
from nar.data.batch import Batch, make_batch
from nar.distributed import data_mesh, initialize, set_cpu_devices
from nar.evaluate import Evaluator, evaluate_sizes, format_table
from nar.model.net import Model, ModelConfig
from nar.processors import PROCESSORS, get_processor
from nar.train import Trainer, build_model, load_run, train
from nar.trajectory import Trajectory, TrajectoryBatch

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "PROCESSORS", "SPECS", "Batch", "Config", "EvalConfig", "Evaluator", "Model", "ModelConfig",
           "TrainConfig", "Trainer", "Trajectory", "TrajectoryBatch", "build_model", "clrs_text", "compare_run",
           "compile_model", "data_mesh", "evaluate_sizes", "execute", "format_table", "get_processor", "initialize",
           "load_config", "load_run", "make_batch", "run_batch", "save_compiled", "set_cpu_devices", "train",
           "use_compile_cache", "__version__"]
