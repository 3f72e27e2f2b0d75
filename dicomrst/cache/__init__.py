"""The retrieve cache: instances a PACS sent for any request, kept on local disk for every worker of the
host, so that a viewer's frames and metadata do not move a series again (``cached_backend.py``)."""
