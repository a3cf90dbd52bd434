"""The federation listener's certificate (config/tls.py) and how the listener loads it
(config/http_server.certificate_options)."""

from __future__ import annotations

import contextlib
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from config import options
from config.http_server import certificate_options
from config.tls import (
    SELF_SIGNED_CERT_NAME,
    SELF_SIGNED_KEY_NAME,
    certificate_names,
    ensure_tls_files,
)
from tests.federation.ca import issue_certificate


def _alt_names(cert: Path) -> list[str]:
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


def test_a_self_signed_pair_is_created_once_and_reused(tmp_path: Path) -> None:
    files, created = ensure_tls_files(None, None, tmp_path, ["localhost", "127.0.0.1"])
    assert created
    assert files.self_signed
    assert (files.cert, files.key) == (
        tmp_path / SELF_SIGNED_CERT_NAME,
        tmp_path / SELF_SIGNED_KEY_NAME,
    )
    cert_pem, key_pem = files.cert.read_bytes(), files.key.read_bytes()

    again, created_again = ensure_tls_files(None, None, tmp_path, ["elsewhere.example"])
    assert not created_again
    assert again == files
    assert (again.cert.read_bytes(), again.key.read_bytes()) == (cert_pem, key_pem)


def test_the_generated_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    files, _ = ensure_tls_files(None, None, tmp_path / "data", ["localhost"])
    for path in (files.cert, files.key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list((tmp_path / "data").glob("*.tmp"))


def test_the_certificate_is_for_the_names_asked(tmp_path: Path) -> None:
    files, _ = ensure_tls_files(None, None, tmp_path, ["matrix.example", "10.0.0.7"])
    assert _alt_names(files.cert) == ["matrix.example", str(ipaddress.ip_address("10.0.0.7"))]


def test_the_names_are_the_server_name_s_host_and_a_particular_bind_address() -> None:
    assert certificate_names("localhost:8448", "127.0.0.1") == ["localhost", "127.0.0.1"]
    assert certificate_names("matrix.example", "0.0.0.0") == ["matrix.example"]
    assert certificate_names("[::1]:8448", "::1") == ["::1"]
    assert certificate_names("matrix.example", "[::]") == ["matrix.example"]
    assert certificate_names("matrix.example", "") == ["matrix.example"]


def test_a_given_pair_is_used_as_it_is(tmp_path: Path) -> None:
    issued = issue_certificate(tmp_path, ["matrix.example"])
    files, created = ensure_tls_files(
        str(issued.cert), str(issued.key), tmp_path / "data", ["ignored"]
    )
    assert (files.cert, files.key, files.self_signed, created) == (
        issued.cert,
        issued.key,
        False,
        False,
    )
    assert not (tmp_path / "data" / SELF_SIGNED_CERT_NAME).exists()


def test_a_certificate_without_its_key_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    issued = issue_certificate(tmp_path, ["matrix.example"])
    with pytest.raises(ValueError, match="together"):
        ensure_tls_files(str(issued.cert), None, tmp_path, ["x"])
    with pytest.raises(ValueError, match="TRELLIS_TLS_KEY"):
        ensure_tls_files(str(issued.cert), str(tmp_path / "nope.key"), tmp_path, ["x"])


def _handshake(server_context: SSL.Context) -> list[str]:
    """A TLS handshake in memory with a listener using ``server_context``; the common
    names of the certificates it presented, in order."""
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                side.do_handshake()
        for source, sink in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                sink.bio_write(source.bio_read(65536))
    chain = client.get_peer_cert_chain(as_cryptography=True) or []
    return [
        str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) for cert in chain
    ]


def test_the_listener_presents_the_whole_chain(tmp_path: Path) -> None:
    issued = issue_certificate(tmp_path, ["matrix.example"])
    context = certificate_options(issued.cert, issued.key).getContext()
    # The server's certificate, then the authority's: what other servers need to verify it.
    assert _handshake(context) == ["matrix.example", "Trellis test CA"]


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = issue_certificate(tmp_path / "a", ["a.example"])
    second = issue_certificate(tmp_path / "b", ["b.example"])
    with pytest.raises(SSL.Error):
        certificate_options(first.cert, second.key)


def test_the_ca_file_setting_must_name_a_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    assert options.federation_ca_file({"federation_ca_file": str(ca)}) == str(ca)
    assert options.federation_ca_file({}) == ""
    with pytest.raises(options.ConfigError, match="TRELLIS_FEDERATION_CA_FILE"):
        options.federation_ca_file({"federation_ca_file": str(tmp_path / "missing.pem")})
