"""Source registry: every module here that defines ``SOURCE`` is a source."""
