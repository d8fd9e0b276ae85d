"""Code as data: detect its language, pull it out of a model's answer, parse and lint it."""
