"""Requests and results of ``agentjobs.complete``: the request model and its validation
(``request``), the result and usage models (``result``), the one reading of usage,
prompt-cache lifetime and price (``usage``), and the one input-token estimate
(``estimate``)."""
