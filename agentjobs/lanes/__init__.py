"""Lanes: how a request reaches Claude besides one synchronous call.

The Message Batches lane (docs/batches.md): a task on the batch lane hands its request
to the state store and ends without a result (step.py); a batcher in one worker at a
time submits the waiting requests of a model group as one Message Batch, and a poller
writes each answer into the result backend under the waiting tasks' ids (batcher.py,
run by runner.py); records.py holds the state-store records they share.
"""
