"""The jobs table (docs/design.md), in one package.

- ``keys``: every key format and status name (nothing else spells ``JOB#``, ``WINDOW#``, ``REC#``);
- ``items``: the items as types (``Job``, ``WindowItem``, ``RecordingItem``) and what is about to
  be written (``WindowClaim``, ``NewJob``, ``RecordingOutcome``);
- ``table``: the one client, the one serialisation and the one place that turns a refused
  condition into a result;
- ``writes``: the one conditional-write helper (an update or put, alone or in a transaction);
- ``store``: the request and callback side (cursors, claims, jobs up to ``READY``) as one
  ``JobStore`` composing ``windows`` (cursors, claims), ``requests`` (jobs from ``REQUESTED``),
  ``readiness`` (what a callback writes) and ``stalled`` (what the reconciler finds);
- ``progress``: the download side (``DOWNLOADING``, REC items, completion);
- ``manifest``: the job's manifest in S3.

Import from the modules: a function loads only the side it uses (the callback never loads the
download side), which is what the deploy tests' code scan and a cold start see.
"""
