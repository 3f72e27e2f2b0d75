import pytest

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.s3.client import MissingCredentials, make_client
from dicomrst.backends.s3.keys import instance_key, selection_prefix
from dicomrst.config import parse_config
from dicomrst.dicomweb.uids import InvalidUID


def s3_config(**entry):
    base = {"aet": "R", "backend": "S3", "endpoint": "http://s3.example.org:9000", "bucket": "research"}
    return parse_config({"aets": [{**base, **entry}]}).aets[0]


def object_url(config) -> str:
    return make_client(config).generate_presigned_url("get_object", Params={"Bucket": "research", "Key": "a/b/c.dcm"})


def test_endpoint_styles_address_the_bucket_as_configured():
    credentials = {"access-key": "k", "secret-key": "s"}
    assert object_url(s3_config(**{"endpoint-style": "path", "credentials": credentials})).startswith(
        "http://s3.example.org:9000/research/a/b/c.dcm")
    assert object_url(s3_config(**{"endpoint-style": "vhost", "credentials": credentials})).startswith(
        "http://research.s3.example.org:9000/a/b/c.dcm")


def test_credentials_from_the_environment(monkeypatch):
    config = s3_config(credentials={"access-key-env": "KEY_VAR", "secret-key-env": "SECRET_VAR"})
    with pytest.raises(MissingCredentials, match="KEY_VAR"):
        make_client(config)
    monkeypatch.setenv("KEY_VAR", "the-key")
    monkeypatch.setenv("SECRET_VAR", "the-secret")
    assert "the-key" in object_url(config)


def test_anonymous_access_signs_nothing():
    assert "Signature" not in object_url(s3_config())


def test_keys_follow_the_layout_and_refuse_path_shaped_uids():
    assert instance_key(InstanceSelection("1.2", "3.4", "5.6")) == "1.2/3.4/5.6.dcm"
    assert selection_prefix(InstanceSelection("1.2")) == "1.2/"
    for bad in ("../1", "1/2", "1.2\n", ""):
        with pytest.raises(InvalidUID):
            selection_prefix(InstanceSelection(bad))
