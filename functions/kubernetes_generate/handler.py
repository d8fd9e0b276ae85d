"""POST /api/kubernetes/generate: Kubernetes manifests, deterministic first, refined, validated."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.kubernetes.generate import generate_manifests
from common.kubernetes.models import KubernetesInput, KubernetesOutput
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["kubernetes"])


@router.post(
    "/api/kubernetes/generate",
    response_model=KubernetesOutput,
    response_model_by_alias=True,
    responses={202: {"description": "A job"}},
)
async def kubernetes_generate(
    body: KubernetesInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> KubernetesOutput | JSONResponse:
    """Deployment, Service, Ingress (and HPA, PDB, ConfigMap when asked) from an app
    description, a Dockerfile or a compose file; schema-validated and reviewed.
    `options.async` makes it a job."""
    return await answer_or_job(
        "kubernetes",
        body,
        principal=principal,
        as_job=body.options.run_async,
        run=lambda: generate_manifests(
            body,
            owner_key_id=principal.key_id,
            model=model if body.refine else None,
            max_attempts=body.options.max_attempts or settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
