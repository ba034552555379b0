"""mugpos: an event-driven Kafka stream processor that watches where mugs stand.

One import root; each subpackage owns one concern and imports only the packages below it
(the contracts in ``pyproject.toml``, checked by ``make lint``):

- ``mugpos.cli``: the ``mugpos`` command and the demo;
- ``mugpos.agents``: the Faust agents (thin: decode, call the domain, produce);
- ``mugpos.web``: HTTP views and the dashboard;
- ``mugpos.streams``: the Faust runtime: app, topic objects, dead letters, metrics, producer/consumer;
- ``mugpos.storage``: adapters to the outside: S3/R2/file store, Redis cache, MongoDB results, the rules topic;
- ``mugpos.training``: the scene renderer, head training and evaluation (never imported by serving code);
- ``mugpos.models``, ``mugpos.rules``, ``mugpos.control``: the domain (vision, rules, scaling), independent
  of one another and of Faust, aiohttp views and the CLI;
- ``mugpos.core`` and ``mugpos.schemas``: the ground floor (settings, errors, codec, topic names; Avro).

In the repository the subpackages are the top-level folders; ``mugpos/`` links them under one root.
"""

__version__ = "0.1.0"
