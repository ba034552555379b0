"""The ``mugpos`` command (``main``) with its extensions (``ml``: synth/train/eval; ``rules``) and the demo."""
