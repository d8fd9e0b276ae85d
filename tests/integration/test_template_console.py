"""template.yaml's web console: a private bucket read by one CloudFront distribution that
also fronts both APIs on the same origin, and the Makefile target that fills it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


@pytest.fixture(scope="module")
def distribution(template: dict[str, Any]) -> dict[str, Any]:
    resource = template["Resources"]["ConsoleDistribution"]
    assert resource["Type"] == "AWS::CloudFront::Distribution"
    return resource["Properties"]["DistributionConfig"]


def _sub(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return str(value)


def _origin(config: dict[str, Any], origin_id: str) -> dict[str, Any]:
    return next(o for o in config["Origins"] if o["Id"] == origin_id)


def test_the_console_bucket_is_private_and_only_the_distribution_reads_it(
    template: dict[str, Any], distribution: dict[str, Any]
) -> None:
    bucket = template["Resources"]["ConsoleBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    block = bucket["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy"))
    assert all(block[k] is True for k in ("IgnorePublicAcls", "RestrictPublicBuckets"))
    assert "WebsiteConfiguration" not in bucket["Properties"]
    # The bucket's origin signs with origin access control (no legacy identity)
    origin = _origin(distribution, distribution["DefaultCacheBehavior"]["TargetOriginId"])
    assert origin["DomainName"] == {"Fn::GetAtt": ["ConsoleBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    oac = template["Resources"]["ConsoleOriginAccessControl"]["Properties"]
    assert oac["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    # And the bucket policy lets CloudFront read for this distribution only
    policy = template["Resources"]["ConsoleBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ConsoleBucket"}
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert len(allows) == 1
    assert allows[0]["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allows[0]["Action"] == "s3:GetObject"
    source = _sub(allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert source.endswith(":distribution/${ConsoleDistribution}")
    assert distribution["DefaultRootObject"] == "index.html"


def test_api_and_websocket_paths_go_to_the_apis_on_the_same_origin(
    template: dict[str, Any], distribution: dict[str, Any]
) -> None:
    behaviours = {b["PathPattern"]: b for b in distribution["CacheBehaviors"]}
    # The pages call /api/... and, behind API Gateway, open /ws?path=/ws/...
    api = behaviours["/api/*"]
    assert "${HttpApi}.execute-api." in _sub(
        _origin(distribution, api["TargetOriginId"])["DomainName"]
    )
    assert {"POST", "PUT", "PATCH", "DELETE"} <= set(api["AllowedMethods"])
    stage = template["Resources"]["WebSocketStage"]["Properties"]["StageName"]
    ws = behaviours[f"/{stage}"]
    origin = _origin(distribution, ws["TargetOriginId"])
    assert "${WebSocketApi}.execute-api." in _sub(origin["DomainName"])
    assert "OriginPath" not in origin  # the viewer's /ws is the stage's path already
    for behaviour in (api, ws):
        # Nothing cached; the key (header or query) and the handshake headers forwarded,
        # Host not (API Gateway answers on its own host name only)
        assert behaviour["CachePolicyId"] == CACHING_DISABLED
        assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert behaviour["ViewerProtocolPolicy"] == "https-only"
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"


def test_the_outputs_name_the_console_and_where_to_upload(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert "${ConsoleDistribution.DomainName}" in _sub(outputs["ConsoleUrl"]["Value"])
    assert outputs["ConsoleBucketName"]["Value"] == {"Ref": "ConsoleBucket"}
    assert outputs["ConsoleDistributionId"]["Value"] == {"Ref": "ConsoleDistribution"}


def test_deploy_console_uploads_dist_and_the_config_the_pages_read(
    template: dict[str, Any],
) -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^deploy-console: \$\(WEB_STAMP\)$", makefile, re.MULTILINE)
    for output in ("ConsoleBucketName", "ConsoleDistributionId"):
        assert output in makefile
    assert 'aws s3 sync $(WEB)/dist "s3://$$bucket" --delete' in makefile
    # The config the target writes is the one src/lib/live.js understands
    line = re.search(r"^CONSOLE_CONFIG := (.*)$", makefile, re.MULTILINE)
    assert line is not None
    config = json.loads(line.group(1))
    stage = template["Resources"]["WebSocketStage"]["Properties"]["StageName"]
    assert config == {"door": "aws", "socketBase": f"/{stage}"}
    live = (ROOT / "local" / "web" / "src" / "lib" / "live.js").read_text()
    assert 'body.door === "aws"' in live and "body.socketBase" in live
