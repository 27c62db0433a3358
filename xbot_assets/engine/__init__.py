"""The autonomous posting engine: the seed's AutonomousPostingEngine, as thin glue with I/O.

``runtime`` picks the implementations for an environment (store, sandbox or X, poster, reader,
generator, clock); ``planner`` plans the day's slots; ``decide`` runs the content policy for
each open slot and queues the chosen post; ``sensing`` holds the read-only questions the Dagster
sensors ask (what is due, is the queue low). Dagster wiring stays in ``xbot_assets/defs/``.
"""
