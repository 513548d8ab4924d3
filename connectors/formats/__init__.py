"""Report parsers, registered by format name (see ``base.REGISTRY``)."""
