# Thin wrappers around hack/ (see hack/README.md).
.PHONY: k8s-binaries cluster-up cluster-down services-up services-down

k8s-binaries:
	hack/build-k8s.sh

cluster-up:
	hack/cluster-up.sh

cluster-down:
	hack/cluster-down.sh

services-up:
	hack/services-up.sh

services-down:
	hack/services-down.sh
