"""Workflow engines run by the gateway, and the helpers they call back into it.

Keep this package light: `python -m gateway.engines.cwl_step` is started once per workflow step, so
nothing here may import the rest of the gateway (or anything heavy) at import time.
"""
