"""livecam server: identity, tokens, cameras, enrollment and health for LiveKit cameras."""

__version__ = "0.1.0"
