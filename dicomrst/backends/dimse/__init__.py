"""The DIMSE backend: a PACS spoken to by C-ECHO, C-FIND, C-MOVE/C-GET and C-STORE (``backend.py``).

Kept free of imports so that the master process can use the light modules here (``slot_files``)."""
