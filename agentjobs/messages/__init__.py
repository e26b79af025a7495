"""Requests and results of ``agentjobs.complete``: the request model and its validation
(``request``), its parts as the Messages API takes them (``content`` blocks, ``tools``
and tool_choice, thinking and output ``options``), the rules that span a whole request
(``checks``), what image and PDF bytes say about themselves (``media``), the result and
usage models (``result``), the one reading of usage, prompt-cache lifetime and price
(``usage``), and the one input-token estimate (``estimate``)."""
