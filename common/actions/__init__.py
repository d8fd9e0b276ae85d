"""Code actions that prove their answers: fix, test, optimize, analyze, migrate, generate.

Each action resolves its input to a workspace (:mod:`common.actions.inputs`), runs
deterministic checks, asks the model through the checked-output loop with the
sandbox's results as extra checks, and answers with what it verified.
"""
