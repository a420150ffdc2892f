"""Envoy/Istio/Linux artefacts in and out: ``inspect`` (decode what users have) and ``recommend``
(emit what they should apply). See docs/integrations.md."""
