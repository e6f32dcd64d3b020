"""The demo workloads: the playbook's staging stack on a cluster, and the scripted outage.

- :mod:`.dashboard`: the "dashboard" service (aiohttp) with /health, /metrics, the inventory
  API backed by PostgreSQL and Redis, a circuit breaker and fault injection. Its image is
  built from this one module (manifests/images/dashboard).
- :mod:`.stack`: the stack of ``manifests/demo`` (dashboard, PostgreSQL, Redis, Prometheus as
  real pods), installed, inspected and broken through kubectl (:mod:`.kube`).
- :mod:`.incidents`: people opening, approving and resolving Incidents (``kubectl --as``).
- :mod:`.story`: ``hack/demo.sh``'s scripted outage. The e2e tests use the same modules.

A package of its own beside the operator (``demo/pyproject.toml``), installed only into the
development venv (``hack/bootstrap.sh``): the operator's wheel and image carry none of it, and
the import contracts in ``.importlinter`` keep the two apart in both directions (the demo runs
the operator as a process, never imports it).
"""

STATE_ENV = "INCIDENT_OPERATOR_STATE"
"""Environment variable naming the state directory of hack/ (default below)."""

DEFAULT_STATE_DIR = "~/.cache/incident-operator/run"
