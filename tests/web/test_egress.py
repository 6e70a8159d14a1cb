"""The SSRF guard without sockets: address classification, every encoding, the allow list, pinning."""

from __future__ import annotations

import ipaddress

import pytest

from isa.core.egress import EgressBlocked, EgressPolicy, is_blocked_ip, parse_ip
from tests.support.web_pages import stub_resolver

BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "0.0.0.0",
    "100.64.0.1",
    "192.0.0.8",
    "198.18.0.1",
    "224.0.0.1",
    "239.1.1.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:7f00:1::",
    "fec0::1",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_and_their_ipv6_disguises_are_blocked(address: str) -> None:
    assert is_blocked_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
    ],
)
def test_numeric_hosts_are_read_the_way_browsers_read_them(host: str, expected: str | None) -> None:
    parsed = parse_ip(host)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost/",
        "http://x.localhost/",
        "http://LOCALHOST./",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
        "http://[::1]:80/",
        "http://0.0.0.0/",
        "http://evil.test/",
        "http://mixed.test/",
        "http://nip.test/",
        "file:///etc/passwd",
        "ftp://example.com/",
        "gopher://x/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "view-source:http://example.com/",
        "chrome://version",
        "http:///nohost",
        "http://user:pw@127.0.0.1/",
    ],
)
async def test_internal_targets_in_every_encoding_are_blocked(url: str) -> None:
    resolver = stub_resolver(
        {"evil.test": [["127.0.0.1"]], "mixed.test": [["93.184.216.34", "10.0.0.1"]], "nip.test": [["169.254.169.254"]]}
    )
    with pytest.raises(EgressBlocked, match="blocked"):
        await EgressPolicy(resolver=resolver).vet(url)


@pytest.mark.anyio
async def test_the_allow_list_opens_only_the_named_host_and_port() -> None:
    policy = EgressPolicy(
        allow_hosts=["127.0.0.1:8001", "intranet.test"],
        allow_cidrs=["10.9.0.0/16"],
        resolver=stub_resolver({"intranet.test": [["10.0.0.5"]], "other.test": [["10.9.1.1"]]}),
    )
    assert (await policy.vet("http://127.0.0.1:8001/x")).ip == "127.0.0.1"
    assert (await policy.vet("http://intranet.test/")).ip == "10.0.0.5"
    assert (await policy.vet("http://other.test/")).ip == "10.9.1.1"
    for url in ("http://127.0.0.1:8002/", "http://127.0.0.1/", "http://localhost:8001/", "http://10.8.0.1/"):
        with pytest.raises(EgressBlocked):
            await policy.vet(url)


@pytest.mark.anyio
async def test_the_first_answer_is_pinned_and_carries_the_original_host() -> None:
    resolver = stub_resolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    vetted = await EgressPolicy(resolver=resolver).vet("https://rebind.test:8443/a?b=1")
    assert vetted.ip == "93.184.216.34"
    assert vetted.pinned_url == "https://93.184.216.34:8443/a?b=1"
    assert vetted.host_header == "rebind.test:8443"
    assert resolver.calls == {"rebind.test": 1}
