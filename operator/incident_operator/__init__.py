"""incident-operator: the incident response playbook as a Kubernetes operator."""

API_GROUP = "incidents.dev"
API_VERSION = "v1alpha1"
__version__ = "0.1.0"
