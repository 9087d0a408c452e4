"""The batch edge: a population sweep over a FHIR Bulk Data export (issue 15).

``bone-cds sweep INPUT --as-of DATE --out DIR`` runs the patient-view rules over every patient of
an export and writes a worklist. It calls the same pure core as the web edge
(:func:`hooks.evaluation.assess`: ``cds_service.chart`` → ``cards``), so a worklist row and a
patient-view card for the same patient and date cannot disagree. Nothing here imports the web
stack (Flask, gunicorn, the request layer): a worker process (or a Spark executor) loads the
chart, the rules and this package only.

* :mod:`sweep.records`   reading NDJSON files (gzip too) and routing each line to its patient;
* :mod:`sweep.prefilter` the cheap, conservative "could this patient be on an antiresorptive?";
* :mod:`sweep.patient`   one patient's evaluation and worklist rows (pure);
* :mod:`sweep.partitions` the two steps every engine runs: a file split into blocks of
  partition lines (:func:`~sweep.partitions.split_file`), a partition's patients swept
  (:func:`~sweep.partitions.sweep_partition`, :func:`~sweep.partitions.sweep_group`);
* :mod:`sweep.worker`    what a sweep process keeps for its lifetime: the prefilter, the element
  memo of R4B verdicts, the one-time start-up (:func:`~sweep.worker.prepare`);
* :mod:`sweep.local`     the local engine: partitions on disk, a pool of workers forked warm;
* :mod:`sweep.spark`     the same steps on Apache Spark (``--engine spark``, the ``spark`` extra),
  its executors' Python workers forked from :mod:`sweep.spark_daemon`;
* :mod:`sweep.output`    worklist.csv, worklist.ndjson, summary.json, tasks.ndjson (FHIR Task);
* :mod:`sweep.progress`  a progress bar on a terminal (tqdm), plain lines otherwise.
* :mod:`sweep.bulk_export` ``--export``: a FHIR Bulk Data export downloaded into ``OUT/export``
  (kick-off, polling, parallel resumable downloads, DELETE on cancel), the only module here with
  an HTTP client (requests), loaded by ``--export`` only;
* :mod:`sweep.smart_backend` its SMART Backend Services tokens (a JWT assertion signed RS384/ES384).
"""
