"""Figure scripts: one per figure, each with ``compute``, ``plot`` and ``main``."""
