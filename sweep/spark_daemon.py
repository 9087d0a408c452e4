"""The Python daemon of the Spark engine's executors (``spark.python.daemon.module``).

PySpark's own daemon (:mod:`pyspark.daemon`), which forks a Python worker per task slot, run
after :func:`sweep.worker.prepare`: every worker it forks starts with the chart, the rules, the
validators and the prefilter loaded, as the local engine's workers do, instead of each importing
and warming them on its first task.
"""

from __future__ import annotations

from pyspark import daemon

from sweep import worker

if __name__ == "__main__":
    worker.prepare()
    daemon.manager()
