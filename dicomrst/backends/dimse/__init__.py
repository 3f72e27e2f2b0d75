from dicomrst.backends.dimse.backend import DimseBackend

__all__ = ["DimseBackend"]
