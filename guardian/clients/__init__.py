"""The edges: the only modules that import SDKs (requests, kubernetes, slack_sdk, ...)."""
