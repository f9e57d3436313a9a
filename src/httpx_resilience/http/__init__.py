"""The HTTP layer: classification of outcomes, the transport and the client."""
