"""Unit tests of the flow-authoring SDK (FlowSpec, decorators, parameters, current)."""
