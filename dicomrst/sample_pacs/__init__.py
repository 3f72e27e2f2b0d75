"""The sample PACS: a small Query/Retrieve SCP seeded with synthetic studies.

It is the demo peer of the default configuration and a fast peer for tests.
``serve`` runs it in-process; ``main`` is the command line (``dicomrst sample-pacs``).
"""

from dicomrst.sample_pacs.scp import main, serve
from dicomrst.sample_pacs.studies import Patient, generate_study, sample_studies

__all__ = ["Patient", "generate_study", "main", "sample_studies", "serve"]
