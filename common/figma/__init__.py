"""Figma files to design tokens, CSS, a Tailwind theme, a component inventory and code.

Deterministic work first: one streamed pass over the file's JSON (:mod:`.walk`)
collects every value a token can come from (:mod:`.collect`) while the same bytes
go to GridFS (:mod:`.store`); tokens are then named and de-duplicated
(:mod:`.tokens`) and rendered (:mod:`.render`). The model comes last and only
writes components from those tokens, each checked before it is returned
(:mod:`.codegen`). :mod:`.service` ties it together for the endpoint and the job.

Nothing heavy is imported here: the job kinds name ``common.figma.service:run_job``.
"""
