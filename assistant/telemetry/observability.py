"""Operations telemetry: Prometheus metrics (`GET /metrics`) and optional OpenTelemetry traces.

Prometheus series (one registry per process; with several workers, scrape each or use the
multiprocess mode of prometheus_client):

- `cxa_turns_total{mode, action}`: turns by reply mode (generated, extractive, declined, handoff, ...) and
  policy action (answer, answer_and_offer, handoff, agent)
- `cxa_turn_seconds{step}`: histogram of each step of a turn (persist, history, intent, retrieve, generate,
  signals, handoff, total)
- `cxa_handoffs_total{reason}`, `cxa_turn_errors_total{kind}`

OpenTelemetry: with `CXA_TELEMETRY__OTEL_ENDPOINT` set (an OTLP/gRPC collector), every turn becomes a
`cxa.turn` span carrying the conversation id, reply mode, action, confidence and step timings.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

logger = logging.getLogger(__name__)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class TurnObserver:
    def __init__(self, otel_endpoint: str | None = None, service_name: str = "cx-assistant") -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter("cxa_turns", "Customer turns", ["mode", "action"], registry=self.registry)
        self.steps = Histogram(
            "cxa_turn_seconds", "Time per step of a turn", ["step"], buckets=_BUCKETS, registry=self.registry
        )
        self.handoffs = Counter("cxa_handoffs", "Handoffs to a person", ["reason"], registry=self.registry)
        self.errors = Counter("cxa_turn_errors", "Turns degraded by an error", ["kind"], registry=self.registry)
        self.tracer: Any = None
        if otel_endpoint:
            self.tracer = _otel_tracer(otel_endpoint, service_name)

    def turn(
        self,
        *,
        conversation_id: str,
        timings_ms: dict[str, float],
        mode: str,
        action: str,
        confidence: float | None,
        handoff_reason: str | None,
        error: str | None,
    ) -> None:
        """Record one finished turn (never raises)."""
        try:
            self.turns.labels(mode=mode, action=action).inc()
            for step, ms in timings_ms.items():
                self.steps.labels(step=step).observe(ms / 1000)
            if handoff_reason:
                self.handoffs.labels(reason=handoff_reason.split(":", 1)[0]).inc()
            if error:
                self.errors.labels(kind=error.split(":", 1)[0][:60]).inc()
            if self.tracer is not None:
                self._span(conversation_id, timings_ms, mode, action, confidence, handoff_reason, error)
        except Exception:
            logger.exception("could not record turn metrics")

    def _span(
        self,
        conversation_id: str,
        timings_ms: dict[str, float],
        mode: str,
        action: str,
        confidence: float | None,
        handoff_reason: str | None,
        error: str | None,
    ) -> None:
        end = time.time_ns()
        start = end - int(timings_ms.get("total", 0.0) * 1e6)
        span = self.tracer.start_span("cxa.turn", start_time=start)
        span.set_attribute("cxa.conversation_id", conversation_id)
        span.set_attribute("cxa.reply_mode", mode)
        span.set_attribute("cxa.action", action)
        if confidence is not None:
            span.set_attribute("cxa.confidence", confidence)
        if handoff_reason:
            span.set_attribute("cxa.handoff_reason", handoff_reason)
        if error:
            span.set_attribute("error.message", error[:500])
        for step, ms in timings_ms.items():
            span.set_attribute(f"cxa.ms.{step}", ms)
        span.end(end_time=end)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _otel_tracer(endpoint: str, service_name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    logger.info("OpenTelemetry traces go to %s", endpoint)
    return provider.get_tracer("cx-assistant")
