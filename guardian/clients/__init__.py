"""The edges: the only modules that import SDKs (prometheus-api-client, requests, ...)."""
