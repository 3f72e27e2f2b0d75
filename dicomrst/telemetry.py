"""Errors and traces to Sentry when ``telemetry.sentry`` names a DSN."""
from __future__ import annotations

from dicomrst.config import TelemetryConfig

# A sample of requests is enough to see where time goes; every error is sent regardless.
TRACES_SAMPLE_RATE = 0.1


def configure_sentry(telemetry: TelemetryConfig) -> bool:
    if not telemetry.sentry:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(dsn=telemetry.sentry, integrations=[FlaskIntegration()], traces_sample_rate=TRACES_SAMPLE_RATE,
                    send_default_pii=False)
    return True
