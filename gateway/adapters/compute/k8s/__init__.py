"""Pieces of the Kubernetes compute backend: object manifests, pod-status reading, the pod watch and the stager.

The backend itself is `gateway.adapters.compute.kubernetes.KubernetesBackend`; docs/kubernetes-backend.md explains
the design.
"""
