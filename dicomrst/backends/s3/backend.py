"""An S3 bucket in the DICOM-RST layout ``{study}/{series}/{instance}.dcm``."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

from botocore.exceptions import BotoCoreError, ClientError
from pydicom import Dataset

from dicomrst.backends.base import Backend, Health, InstanceSelection, NotSupported, StoreSession
from dicomrst.backends.s3.client import MissingCredentials, make_client
from dicomrst.config import S3AetConfig
from dicomrst.dicomweb.query import QidoQuery


class S3Backend(Backend):
    def __init__(self, config: S3AetConfig) -> None:
        self.config = config
        self.aet = config.aet

    def health(self) -> Health:
        try:
            # One attempt: a health check reports the state now, within the connect timeout.
            make_client(self.config, attempts=1).head_bucket(Bucket=self.config.bucket)
        except MissingCredentials as error:
            return Health(False, f"S3 credentials: {error}")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            return Health(False, f"bucket {self.config.bucket} at {self.config.endpoint} answered {code}")
        except BotoCoreError as error:
            return Health(False, f"bucket {self.config.bucket} at {self.config.endpoint} cannot be reached: {error}")
        return Health(True, f"bucket {self.config.bucket} at {self.config.endpoint} answers")

    def search(self, query: QidoQuery) -> Iterator[Dataset]:
        raise NotSupported("QIDO-RS is not available for S3 AETs: a bucket has no index to search")

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        raise NotSupported("WADO-RS is not available for S3 AETs yet")

    def store_session(self) -> AbstractContextManager[StoreSession]:
        raise NotSupported("STOW-RS is not available for S3 AETs yet")
