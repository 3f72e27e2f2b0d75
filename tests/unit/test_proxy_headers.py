"""RFC 7239 Forwarded from a trusted proxy, as X-Forwarded-* are; error bodies name the path the client
used, never the internal one behind a proxy prefix; QIDO attributes in ascending tag order."""
from __future__ import annotations

from tests.unit.fakes import ScriptedBackend, client_for, study

TRUSTED = {"REMOTE_ADDR": "10.1.2.3"}
UNTRUSTED = {"REMOTE_ADDR": "192.168.1.5"}


def retrieve_url(client, headers, environ) -> str:
    return client.get("/aets/PACS/studies", headers=headers, environ_base=environ).get_json()[0]["00081190"]["Value"][0]


def test_rfc7239_forwarded_from_a_trusted_proxy():
    client = client_for(ScriptedBackend([study(1)]), **{"trusted-proxies": ["10.0.0.0/8"]})
    headers = {"Forwarded": 'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711";proto=https;'
                            'host="pacs.example.org:8443"'}
    assert retrieve_url(client, headers, TRUSTED) == "https://pacs.example.org:8443/aets/PACS/studies/1.2.3.1"
    assert retrieve_url(client, headers, UNTRUSTED) == "http://localhost/aets/PACS/studies/1.2.3.1"


def test_an_x_forwarded_header_of_the_same_proxy_wins_over_forwarded():
    client = client_for(ScriptedBackend([study(1)]), **{"trusted-proxies": ["10.0.0.0/8"]})
    headers = {"Forwarded": "proto=https;host=a.example", "X-Forwarded-Host": "b.example"}
    assert retrieve_url(client, headers, TRUSTED) == "https://b.example/aets/PACS/studies/1.2.3.1"


def test_a_malformed_forwarded_header_is_ignored():
    client = client_for(ScriptedBackend([study(1)]), **{"trusted-proxies": ["10.0.0.0/8"]})
    headers = {"Forwarded": 'proto=gopher;host=;;=x;"broken'}
    assert retrieve_url(client, headers, TRUSTED) == "http://localhost/aets/PACS/studies/1.2.3.1"


def test_not_found_names_the_path_the_client_used_behind_a_prefix():
    client = client_for(ScriptedBackend([]), **{"base-path": "/gw", "trusted-proxies": ["10.0.0.0/8"]})
    response = client.get("/gw/aets/PACS/nonsense", headers={"X-Forwarded-Prefix": "/dicomweb"},
                          environ_base=TRUSTED)
    assert response.status_code == 404
    assert response.get_json() == {"error": "no such resource: /dicomweb/aets/PACS/nonsense"}
    direct = client.get("/gw/aets/PACS/nonsense")
    assert direct.get_json() == {"error": "no such resource: /gw/aets/PACS/nonsense"}


def test_qido_attributes_come_in_ascending_tag_order():
    match = study(1)
    match.SpecificCharacterSet = "ISO_IR 100"  # added last, sorts first
    client = client_for(ScriptedBackend([match]))
    keys = list(client.get("/aets/PACS/studies").get_json()[0])
    assert keys == sorted(keys) and keys[0] == "00080005" and "00081190" in keys
