"""A tenant's look: logo embedded in the page, accent colour held to WCAG AA, support contact
on every error page, the desk named on every page. Checked on rendered templates, through
check-config, and on a real sidecar."""

from __future__ import annotations

import base64
import copy
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.config.loading import ConfigError, parse_config
from sidecar.pages.branding import PageLook, look_of
from sidecar.pages.colour import contrast_ratio
from sidecar.pages.render import error_page, render_page
from tests.config.test_config import ENV, GOOD
from tests.pages.test_render import elements, the
from tests.world import open_world

SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#0f6cbd"/></svg>\n'


def png(width: int = 1, height: int = 1, padding: int = 0) -> bytes:
    """A valid PNG (grey pixels); ``padding`` adds an ancillary chunk to reach a size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    extra = chunk(b"tEXt", b"Comment\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def with_branding(branding: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(GOOD)
    document["tenants"][0]["branding"] = branding
    return document


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(document), env=ENV)
    return info.value.problems


# --- WCAG contrast ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("colour", "ratio"),
    [("#000000", 21.0), ("#ffffff", 1.0), ("#767676", 4.54), ("#777777", 4.48), ("#0f6cbd", 5.38)],
)
def test_contrast_ratio_against_white(colour: str, ratio: float) -> None:
    assert contrast_ratio(colour, "#ffffff") == pytest.approx(ratio, abs=0.01)


def test_a_dark_enough_accent_is_accepted_and_normalised() -> None:
    config = parse_config(yaml.safe_dump(with_branding({"accent_color": "#0F6CBD"})), env=ENV)
    branding = config.tenants[0].branding
    assert branding is not None
    assert branding.accent_color == "#0f6cbd"
    short = parse_config(yaml.safe_dump(with_branding({"accent_color": "#036"})), env=ENV)
    assert short.tenants[0].branding is not None
    assert short.tenants[0].branding.accent_color == "#003366"


def test_check_config_refuses_an_accent_without_aa_contrast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(with_branding({"accent_color": "#777777"})))
    monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tenants[0].branding.accent_color: #777777 has a contrast of 4.48:1 against white" in err
    assert "WCAG AA needs at least 4.5:1" in err
    path.write_text(yaml.safe_dump(with_branding({"accent_color": "#767676"})))
    assert main(["check-config", "-c", str(path)]) == 0


@pytest.mark.parametrize("value", ["red", "#12345", "#0f6cbd;}body{display:none", "0f6cbd", 42])
def test_an_accent_that_is_not_a_hex_colour_is_refused(value: object) -> None:
    [problem] = problems_of(with_branding({"accent_color": value}))
    assert problem.startswith("tenants[0].branding.accent_color: must be a colour written #rrggbb")


def test_logo_file_problems_name_the_field(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png(padding=70_000))
    text = tmp_path / "fake.png"
    text.write_text("not an image")
    cases = {
        str(big): "is larger than 64 KiB",
        str(text): "is neither a PNG nor an SVG image",
        str(tmp_path / "missing.svg"): "cannot read",
    }
    for path, expected in cases.items():
        [problem] = problems_of(with_branding({"logo_file": path}))
        assert problem.startswith("tenants[0].branding.logo_file: "), problem
        assert expected in problem
    [gif] = problems_of(with_branding({"logo_file": str(tmp_path / "logo.gif")}))
    assert gif.startswith("tenants[0].branding.logo_file: must be a .png or .svg file")


def test_logo_and_colour_problems_are_reported_together(tmp_path: Path) -> None:
    document = with_branding({"logo_file": str(tmp_path / "gone.png"), "accent_color": "#aaa"})
    document["tenants"][0]["sso"]["client_id"] = "abc"
    problems = problems_of(document)
    assert [p.split(":", 1)[0] for p in problems] == [
        "tenants[0].branding.logo_file",
        "tenants[0].sso.client_id",
        "tenants[0].branding.accent_color",
    ]


def test_unknown_branding_fields_and_long_contacts_are_refused() -> None:
    [typo] = problems_of(with_branding({"accent_colour": "#0f6cbd"}))
    assert typo.startswith("tenants[0].branding.accent_colour: unknown field")
    [long] = problems_of(with_branding({"support_contact": "x" * 201}))
    assert long.startswith("tenants[0].branding.support_contact:")


# --- rendering -----------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "data", "media"), [(".png", png(4, 2), "image/png"), (".svg", SVG, "image/svg+xml")])  # fmt: skip
def test_logo_is_embedded_as_a_data_uri(tmp_path: Path, suffix: str, data: bytes, media: str) -> None:  # fmt: skip
    logo = tmp_path / ("logo" + suffix)
    logo.write_bytes(data)
    config = parse_config(yaml.safe_dump(with_branding({"logo_file": str(logo)})), env=ENV)
    look = look_of(config.tenants[0])
    html = render_page("signup.html", look=look, csrf_token="t")
    img = the(html, "img", **{"class": "masthead-logo"})
    assert img["src"] == f"data:{media};base64," + base64.b64encode(data).decode()
    assert img["alt"] == "desk.contoso.com"  # the desk's name, as no name is configured
    assert "wordmark-text" not in html


def test_a_changed_logo_file_is_read_again(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(SVG)
    config = parse_config(yaml.safe_dump(with_branding({"logo_file": str(logo)})), env=ENV)
    first = look_of(config.tenants[0]).logo_data_uri
    logo.write_bytes(SVG.replace(b"#0f6cbd", b"#123456") + b"<!-- v2 -->\n")
    assert look_of(config.tenants[0]).logo_data_uri != first


def test_accent_colour_drives_buttons_and_links() -> None:
    html = render_page("signup.html", look=PageLook("Desk", accent_color="#0f6cbd"), csrf_token="t")
    assert ":root{--brand:#0f6cbd;" in html
    plain = render_page("signup.html", look=PageLook("Desk"), csrf_token="t")
    assert "--brand:#" not in plain.replace("--brand: #", "")  # only the stylesheet's default


def test_error_page_names_the_desk_and_its_support_contact() -> None:
    look = PageLook("Contoso Service Desk", support_contact="IT help desk, it-help@contoso.com")
    html = error_page(
        title="Not found",
        message="There is no such page.",
        status=404,
        look=look,
        sign_in_url="/.sso/login?rd=/tickets",
    )
    assert "Contoso Service Desk" in html
    assert "<title>Not found · Contoso Service Desk</title>" in html
    assert "Need help? Contact IT help desk, it-help@contoso.com." in html
    [link] = [a for a in elements(html, "a") if a.get("href", "").startswith("/.sso/login")]
    assert link["href"] == "/.sso/login?rd=/tickets"


def test_no_support_line_without_a_contact() -> None:
    html = error_page(title="Not found", message="m", status=404, look=PageLook("Desk"))
    assert "Need help?" not in html


# --- on a running sidecar -----------------------------------------------------------


async def test_branding_on_the_real_error_pages_and_signup_screen(tmp_path: Path) -> None:
    logo = tmp_path / "contoso.png"
    logo.write_bytes(png(3, 3))

    def brand(document: dict[str, Any]) -> None:
        document["tenants"][0]["branding"] = {
            "logo_file": str(logo),
            "accent_color": "#0f6cbd",
            "support_contact": "IT help desk, it-help@contoso.com",
        }

    async with open_world(edit=brand) as world:
        browser = world.browser("alice")
        browser.headers["Accept-Language"] = "fr"
        missing = await browser.get("/.sso/nope?x=1")
        assert missing.status == 404
        assert '<html lang="fr">' in missing.text
        assert "Contoso Service Desk" in missing.text
        assert "Besoin d'aide ? Contactez IT help desk, it-help@contoso.com." in missing.text
        assert 'src="data:image/png;base64,' in missing.text
        assert ">Se reconnecter<" in missing.text
        assert missing.headers["Content-Security-Policy"].count("img-src data:") == 1
        screen = await browser.open("/tickets")
        assert "Bienvenue sur Contoso Service Desk" in screen.text
        assert ":root{--brand:#0f6cbd;" in screen.text
        assert 'src="data:image/png;base64,' in screen.text
