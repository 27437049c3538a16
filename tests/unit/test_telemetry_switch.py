"""FastAPI's own OpenTelemetry is on only where the deployment configures OpenTelemetry:
elsewhere its spans go nowhere and cost every request."""

from __future__ import annotations

import pytest

from baton.api.app import telemetry_wanted


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"PATH": "/usr/bin", "BATON_ENV": "production"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_SERVICE_NAME": "baton"}, True),
        ({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}, True),
        ({"FASTAPI_OTEL_AUTO_CONFIGURE": ""}, False),
        ({"FASTAPI_OTEL_AUTO_CONFIGURE": "false"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ],
)
def test_telemetry_follows_the_standard_opentelemetry_variables(
    environ: dict[str, str], wanted: bool
) -> None:
    assert telemetry_wanted(environ) is wanted
