"""nar: neural algorithmic reasoning on graphs, in JAX."""

from nar.algorithms import ALGORITHMS, SPECS, execute, run_batch
from nar.trajectory import Trajectory, TrajectoryBatch

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "SPECS", "Trajectory", "TrajectoryBatch", "__version__", "execute", "run_batch"]
