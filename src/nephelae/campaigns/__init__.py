"""Reprocessing campaigns: a processor applied over whole dataset selections, cut into tasks, run on Dask.

`spec` parses and checks the contract document, `planning` cuts the input granules into tasks (streaming, pure),
`state` is the engine's pure state machine (events in, actions out). The runner that talks to Dask and the database
only carries out what the state machine decides.
"""
