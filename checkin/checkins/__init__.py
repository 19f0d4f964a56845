"""Check-ins, the hot path: the check-in and check-out scripts, single and batch check-ins,
check-outs, sentinel uploads, and their routes (answered from raw ASGI)."""
