"""Lease summary PDFs: rendered with fpdf2 and the shipped DejaVu font, read back with pypdf."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from typing import Any

import pydantic
import pypdf
import pytest

from tools.documents.lease import FONT_DIR, LeaseTerms, UnsupportedCharacters, render_lease_pdf, render_lease_pdf_sync

CREATED = dt.datetime(2025, 2, 1, 9, 30, tzinfo=dt.UTC)


def terms(**changes: Any) -> LeaseTerms:
    values: dict[str, Any] = {
        "lease_id": "L-2025-0042",
        "tenant_name": "Zoë Ñúñez",
        "tenant_email": "zoe.nunez@example.com",
        "tenant_phone": "+1 512 555 0100",
        "property_id": "P-1001",
        "property_address": "1234 Oak St, Austin, TX 78704",
        "start_date": dt.date(2025, 3, 1),
        "end_date": dt.date(2026, 2, 28),
        "monthly_rent": 1850,
        "deposit": 2775,
        "manager_name": "Dana Whitfield",
    }
    return LeaseTerms(**(values | changes))


def read(pdf: bytes) -> tuple[pypdf.PdfReader, str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def embedded_fonts(reader: pypdf.PdfReader) -> set[str]:
    """The base names of the fonts the pages use, each checked to carry its TrueType program in the file."""
    names: set[str] = set()
    for page in reader.pages:
        resources: Any = page["/Resources"]
        fonts = resources["/Font"]
        for key in fonts:
            font = fonts[key].get_object()
            [descendant] = font["/DescendantFonts"]
            assert "/FontFile2" in descendant.get_object()["/FontDescriptor"], font["/BaseFont"]
            # A subset's name is a six-letter tag, "+", then the font's own name.
            names.add(str(font["/BaseFont"]).split("+", 1)[1])
    return names


async def test_the_summary_holds_every_term_as_text() -> None:
    pdf = await render_lease_pdf(terms(), created_at=CREATED)

    assert pdf.startswith(b"%PDF-")
    reader, text = read(pdf)
    assert len(reader.pages) == 1
    for expected in (
        "Residential Lease Summary",
        "Zoë Ñúñez",
        "zoe.nunez@example.com",
        "+1 512 555 0100",
        "1234 Oak St, Austin, TX 78704",
        "P-1001",
        "March 1, 2025",
        "February 28, 2026",
        "$1,850 per month",
        "$2,775",
        "Dana Whitfield",
        "Tenant: Zoë Ñúñez",
        "Property manager: Dana Whitfield",
        "Lease L-2025-0042 · page 1 of 1",
    ):
        assert expected in text, expected
    assert reader.metadata is not None
    assert reader.metadata.title == "Lease summary L-2025-0042"
    assert reader.metadata.creation_date == CREATED
    # Only the shipped font, embedded, never a standard font that the viewer would substitute.
    assert embedded_fonts(reader) == {"DejaVuSansBook", "DejaVuSansBold"}


async def test_the_phone_line_is_left_out_without_a_phone() -> None:
    _, text = read(await render_lease_pdf(terms(tenant_phone=None), created_at=CREATED))
    assert "Phone" not in text
    assert "zoe.nunez@example.com" in text


@pytest.mark.parametrize(
    "name",
    ["Zoë Ñúñez", "Łukasz Żółć", "Ελένη Παπαδοπούλου", "Дмитрий Иванов", "Nguyễn Thị Thảo", "Ørjan Æbeltoft-Åsli"],
)
async def test_names_beyond_ascii_render_as_themselves(name: str) -> None:
    _, text = read(await render_lease_pdf(terms(tenant_name=name, manager_name=name), created_at=CREATED))
    assert f"Tenant: {name}" in text
    assert f"Property manager: {name}" in text


async def test_characters_the_font_lacks_are_refused_not_drawn_as_boxes() -> None:
    with pytest.raises(UnsupportedCharacters) as caught:
        await render_lease_pdf(terms(tenant_name="王小明 (Wang)"), created_at=CREATED)
    assert caught.value.characters == sorted("王小明")
    assert "U+738B" in str(caught.value)


def test_the_same_terms_and_time_give_the_same_bytes() -> None:
    first = render_lease_pdf_sync(terms(), CREATED)
    assert render_lease_pdf_sync(terms(), CREATED) == first
    later = render_lease_pdf_sync(terms(), CREATED + dt.timedelta(days=1))
    assert later != first
    assert read(later)[1] == read(first)[1]


async def test_the_longest_terms_fit_on_two_pages() -> None:
    widest = terms(
        lease_id="L" * 64,
        tenant_name="W" * 120,
        tenant_email="w" * 240 + "@example.com",
        tenant_phone="W" * 40,
        property_id="W" * 32,
        property_address=("Ш" * 29 + " ") * 10,
        manager_name=("Ш" * 59 + " ") * 2,
        monthly_rent=1_000_000,
        deposit=10_000_000,
    )
    reader, text = read(await render_lease_pdf(widest, created_at=CREATED))
    assert len(reader.pages) == 2
    flat = "".join(text.split())
    assert "Tenant:" + "W" * 120 in flat
    assert "Propertymanager:" + "Ш" * 118 in flat
    assert "$1,000,000permonth" in flat and "$10,000,000" in flat


async def test_rendering_leaves_the_event_loop_free() -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    try:
        before, started = ticks, time.perf_counter()
        await render_lease_pdf(terms(), created_at=CREATED)
        elapsed = time.perf_counter() - started
    finally:
        beating.cancel()
    # Rendered on the loop's thread, the render would have allowed no tick at all while it ran.
    assert ticks - before >= 2, (ticks - before, elapsed)


def test_terms_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="on or before it starts"):
        terms(end_date=dt.date(2025, 3, 1))
    with pytest.raises(pydantic.ValidationError, match="monthly_rent"):
        terms(monthly_rent=1850.5)
    with pytest.raises(pydantic.ValidationError, match="monthly_rent"):
        terms(monthly_rent="1850")
    with pytest.raises(pydantic.ValidationError, match="deposit"):
        terms(deposit=-1)
    with pytest.raises(pydantic.ValidationError, match="tenant_name"):
        terms(tenant_name=" \n ")
    with pytest.raises(pydantic.ValidationError, match="tenant_email"):
        terms(tenant_email="zoe at example.com")
    with pytest.raises(pydantic.ValidationError, match="lease_id"):
        terms(lease_id="L 42/../x")
    # A newline cannot add a line of its own to the document.
    assert terms(tenant_name="Zoë\nRent: $0").tenant_name == "Zoë Rent: $0"
    assert terms(tenant_phone="  ").tenant_phone is None
    with pytest.raises(ValueError, match="timezone-aware"):
        render_lease_pdf_sync(terms(), dt.datetime(2025, 2, 1))


def test_the_font_and_its_licence_ship_with_the_code() -> None:
    assert {p.name for p in FONT_DIR.iterdir()} >= {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE", "README.md"}
    assert "Bitstream Vera Fonts Copyright" in (FONT_DIR / "LICENSE").read_text()
