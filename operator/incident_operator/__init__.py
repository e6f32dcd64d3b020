"""incident-operator: the incident response playbook as a Kubernetes operator."""

API_GROUP = "incidents.dev"
API_VERSION = "v1alpha1"
#: The name the operator goes by: Event source, managed-by label, user agents.
COMPONENT = "incident-operator"
__version__ = "0.1.0"
