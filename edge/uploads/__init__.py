"""Clip uploads from the edge to the server: a durable queue beside the event outbox, a
resumable chunked sender (contract 5) and the bandwidth limit they share."""
