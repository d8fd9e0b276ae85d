"""Kubernetes manifests for an app: ``POST /api/kubernetes/generate``.

``generate`` holds the flow (spec → deterministic manifests → model refinement →
validation), ``infer`` reads a Dockerfile or compose file, ``schema`` validates
against a Kubernetes version offline, ``models`` is the request and the answer. The
manifests themselves and their best-practice review live with the Kubernetes worker
(:mod:`common.agents.workers.kubernetes`), which the Lead architect uses too.
"""
