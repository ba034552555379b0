"""Building the detector's coaster head: rendered scenes (``synth``), head training on the frozen
trunk (``train``), the model card (``card``), evaluation (``evaluation``) and the real photos that
ship in installed packages (``photos``).

Serving code (``mugpos.models``, the agents) never imports this package.
"""

import mugpos.models  # noqa: F401  (offline environment before anything imports ultralytics)
