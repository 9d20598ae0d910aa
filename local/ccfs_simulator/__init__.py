"""A local CC-FS (Huawei Cloud AICC file server) simulator for tests and the local stack.

See ``local/README.md``. The protocol it implements is ``shared/ccfs-protocol.md``.
"""

import importlib.util as _importlib_util
import sys as _sys
from pathlib import Path as _Path

if _importlib_util.find_spec("ccfs") is None:  # run from a checkout without PYTHONPATH=layers/shared
    _sys.path.insert(0, str(_Path(__file__).resolve().parents[2] / "layers" / "shared"))

from .config import PROFILES, Faults, SimulatorConfig, TenantSpec
from .data import CDR_HEADER, INDEX_HEADER, Call, Recording
from .simulator import OPERATIONS, RecordingTruth, Simulator, Truth

__all__ = [
    "CDR_HEADER",
    "INDEX_HEADER",
    "OPERATIONS",
    "PROFILES",
    "Call",
    "Faults",
    "Recording",
    "RecordingTruth",
    "Simulator",
    "SimulatorConfig",
    "TenantSpec",
    "Truth",
]
