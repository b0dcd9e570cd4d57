"""Benchmarks: scripts that measure and print figures, never assert.

``colorstyle bench`` (:mod:`jobs.bench.job`: the job against the model alone and a naive loop, the
actor path, the stylization methods); ``python -m jobs.bench.<name>`` for the others
(``colorizers``, ``encode``, ``flow``, ``memory``, ``temporal``, ``train``) and
``python -m jobs.bench.gpu_check`` on a GPU node.
"""
