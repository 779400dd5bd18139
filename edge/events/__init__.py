"""Events on the edge: the tracker that turns motion and detections into event phases,
the snapshots that go with them, and the durable outbox that delivers them to the server."""
