"""The shared layer: everything a handler needs, nothing that knows which door it came through.

Only ``common.web`` knows FastAPI (the app factory, the one error mapper, the auth
dependency), and only ``common.web.lambda_entry`` knows Lambda; every other package
here is plain Python over typed inputs and store interfaces.
"""
