"""The local stack's processes: what runs in a child of its own, and how the parent starts them.

- ``procs``: spawning a child, its ready file, orphan protection, shutdown; ``supervisor``: every
  function worker started, watched and restarted as Lambda would.
- Children, each ``python -m local.stack.processes.<name>``: ``motoserver`` (moto's server),
  ``front`` (API Gateway in front of the callback function), ``worker`` (one Lambda instance fed by
  an SQS poller or the schedule).
- What runs inside them: ``runtime`` (a warm Lambda sandbox for one function), ``events`` (the events
  AWS hands the functions, and a context object), ``netmap`` (the stack's host names → loopback ports).
"""
