"""bone-safety-cds: a CDS Hooks 2.0 service for patients on antiresorptive bone therapy.

Importing this package is cheap and pulls in no web framework: the Flask app is built by
:func:`cds_service.app.create_app`, and the pure clinical model lives in
:mod:`cds_service.chart`.
"""

__version__ = "0.1.0"
