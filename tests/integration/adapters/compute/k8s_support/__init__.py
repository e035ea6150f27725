"""Test support for the Kubernetes backend: an emulated API server (kmock) and a fake kubelet."""
