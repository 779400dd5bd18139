"""livecam edge: publishes cameras into LiveKit (see DESIGN.md)."""

__version__ = "0.1.0"
