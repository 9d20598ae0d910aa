"""The jobs table (docs/design.md), in one package.

- ``keys``: every key format and status name (nothing else spells ``JOB#``, ``WINDOW#``, ``REC#``);
- ``items``: the items as types (``Job``, ``WindowItem``, ``RecordingItem``) and what is about to
  be written (``WindowClaim``, ``NewJob``, ``RecordingOutcome``);
- ``table``: the one client, the one serialisation and the one place that turns a refused
  condition into a result;
- ``store``: the request and callback side (cursors, claims, jobs up to ``READY``);
- ``progress``: the download side (``DOWNLOADING``, REC items, completion);
- ``manifest``: the job's manifest in S3.

Import from the modules: a function loads only the side it uses (the callback never loads the
download side), which is what the deploy tests' code scan and a cold start see.
"""
