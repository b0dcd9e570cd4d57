"""A job's metrics: the tables (:mod:`jobs.metrics.tables`), where they are stored (:mod:`jobs.metrics.store`)
and the figures made of them (:mod:`jobs.metrics.summary`)."""
