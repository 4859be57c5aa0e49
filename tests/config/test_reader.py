"""The config as `serve` reads it: in forked children, with unchanged tenants kept as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sidecar.config.loading import ConfigError
from sidecar.config.reader import ConfigReader
from tests.config.test_directory import MAIN, sso_tenant, tenant


@pytest.fixture
def reader() -> Iterator[ConfigReader]:
    reader = ConfigReader()
    try:
        yield reader
    finally:
        reader.close()


def test_a_reread_keeps_unchanged_tenants_and_refuses_a_broken_change(
    reader: ConfigReader, tmp_path: Path
) -> None:
    config = tmp_path / "conf"
    config.mkdir()
    (config / "main.yaml").write_text(yaml.safe_dump(MAIN))
    tenants = [sso_tenant("desk.contoso.com"), tenant("a.test"), tenant("b.test")]
    (config / "t.yaml").write_text(yaml.safe_dump({"tenants": tenants}))
    first = reader.load(config).config
    assert [t.host for t in first.tenants] == ["desk.contoso.com", "a.test", "b.test"]
    sso = first.tenants[0].sso
    assert sso is not None
    assert sso.client_secret[0].get_secret_value() == "s3cr3t-value"

    tenants[1]["public_paths"] = ["/assets/"]
    (config / "t.yaml").write_text(yaml.safe_dump({"tenants": tenants}))
    (config / "u.yaml").write_text(yaml.safe_dump({"tenants": [tenant("c.test")]}))
    second = reader.load(config).config
    assert [t.host for t in second.tenants] == ["desk.contoso.com", "a.test", "b.test", "c.test"]
    assert second.tenants[0] is first.tenants[0]
    assert second.tenants[2] is first.tenants[2]
    assert second.tenants[1].public_paths == ("/assets/",)
    assert second.server == first.server

    (config / "u.yaml").write_text(yaml.safe_dump({"tenants": [tenant("a.test")]}))
    with pytest.raises(ConfigError) as info:
        reader.load(config)
    assert info.value.problems == [
        f"{config}/u.yaml: tenants[0].host: duplicate host 'a.test' (also {config}/t.yaml: tenants[1])"
    ]
    (config / "u.yaml").write_text("tenants: [\n")
    with pytest.raises(ConfigError) as info:
        reader.load(config)
    assert info.value.problems[0].startswith(f"{config}/u.yaml: (file): not valid YAML: line")
