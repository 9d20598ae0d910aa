"""The export pipeline: planning windows, job state, callbacks, bill and recording copies."""
