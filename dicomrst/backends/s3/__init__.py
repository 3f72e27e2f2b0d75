"""The S3 backend: a bucket in DICOM-RST's layout (``backend.py``).

Kept free of imports so that the config (read in gunicorn's master) can use ``config.py`` without boto3."""
