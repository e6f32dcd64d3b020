"""The demo data plane: the playbook's staging stack made real on a kwok cluster.

- :mod:`.dashboard`: the "dashboard" service (aiohttp) with /health, /metrics, the inventory
  API backed by PostgreSQL and Redis, a circuit breaker and fault injection.
- :mod:`.dataplane`: the bridge that watches the pods of a namespace and keeps one real local
  process per app in step with the newest Running pod (kwok pods run no containers).
- :mod:`.prometheus`: renders a scrape config and runs a real Prometheus server.
- :mod:`.stack` and :mod:`.story`: the whole stack for the e2e tests and ``hack/demo.sh``.

A package of its own beside the operator (``demo/pyproject.toml``), installed only into the
development venv (``hack/bootstrap.sh``): the operator's wheel and image carry none of it, and
the import contracts in ``.importlinter`` keep the two apart in both directions (the demo runs
the operator as a process, never imports it).
"""

STATE_ENV = "INCIDENT_OPERATOR_STATE"
"""Environment variable naming the state directory of hack/ (default below)."""

DEFAULT_STATE_DIR = "~/.cache/incident-operator/run"
