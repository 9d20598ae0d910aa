"""The embedded local stack: the SAM app's functions against moto and the CC-FS simulator.

``python -m local.stack demo`` / ``serve`` (``make demo`` / ``make serve``); library use::

    from local.stack import LocalStack, StackConfig

    with LocalStack(StackConfig(calls=150, tenants=2)) as stack:
        stack.run_until_complete(timeout=300)
        verdict = stack.verify()

See local/STACK.md.
"""

from local.stack.stack import LocalStack, Progress, StackConfig, StackNames
from local.stack.verify import Verdict

__all__ = ["LocalStack", "Progress", "StackConfig", "StackNames", "Verdict"]
