"""The lease summary a new tenant receives at onboarding: `LeaseTerms` in, one or two pages of PDF out.

Library: fpdf2 rather than reportlab. Both are actively maintained, pure-Python wheels that need Pillow. fpdf2 ships
type hints (py.typed), so strict mypy needs no stubs; it keeps fonts on the `FPDF` instance where reportlab
registers them in a process-wide table, so renders in worker threads share no state; it embeds and subsets
TrueType fonts (through fontTools); its wheel is about a sixth of reportlab's (0.3 MB against 2 MB). Its licence is
LGPL-3.0-only: propbot (MIT) imports it unmodified as an installed dependency, which the LGPL permits; vendoring or
patching it would bring obligations. reportlab (BSD) is the fallback should LGPL be ruled out.

Font: DejaVu Sans 2.37, shipped in `fonts/` (its README says where from). fpdf2 bundles no TrueType font, only the
PDF standard fonts (Helvetica and co.), which cover Latin-1 at best; a system font may be missing wherever propbot
is deployed. DejaVu covers every Latin accent, Greek and Cyrillic, not CJK: text with a character the font lacks
raises `UnsupportedCharacters` instead of printing a blank box into a legal document.

Rendering is CPU-bound (tens of milliseconds, mostly parsing the font), so `render_lease_pdf` runs it in a worker
thread. The output is the same bytes for the same terms and `created_at` (the only timestamp in the file).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Final, Self

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FONT_DIR: Final = Path(__file__).parent / "fonts"
_FAMILY: Final = "DejaVuSans"
_FONT_FILES: Final = {"": FONT_DIR / "DejaVuSans.ttf", "B": FONT_DIR / "DejaVuSans-Bold.ttf"}
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_LABEL_WIDTH: Final = 48.0  # mm: fits "Security deposit" at 10.5 pt with room to spare
_LINE: Final = 6.0  # mm per text line
_SIGNATURE_HEIGHT: Final = 32.0  # mm: the space above a signature line, the line, and a name on up to 3 lines


class LeaseTerms(BaseModel):
    """What the lease summary says. Money is whole US dollars; text is single-line (runs of whitespace collapse)."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    lease_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    tenant_name: str = Field(min_length=1, max_length=120)
    tenant_email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    tenant_phone: str | None = Field(default=None, max_length=40)
    property_id: str = Field(min_length=1, max_length=32)
    property_address: str = Field(min_length=1, max_length=300)
    start_date: dt.date
    end_date: dt.date
    # strict: a float or a string is a caller's mistake here, not something to round silently.
    monthly_rent: int = Field(strict=True, gt=0, le=1_000_000)
    deposit: int = Field(strict=True, ge=0, le=10_000_000)
    manager_name: str = Field(min_length=1, max_length=120)

    @field_validator("tenant_name", "property_id", "property_address", "manager_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # A newline in a name would break the layout (and could fake an extra line in the document).
        collapsed = " ".join(value.split())
        if not collapsed:
            raise ValueError("must not be blank")
        return collapsed

    @field_validator("tenant_phone")
    @classmethod
    def _optional_line(cls, value: str | None) -> str | None:
        return " ".join(value.split()) or None if value is not None else None

    @model_validator(mode="after")
    def _term_is_positive(self) -> Self:
        if self.end_date <= self.start_date:
            raise ValueError(f"the lease ends ({self.end_date}) on or before it starts ({self.start_date})")
        return self


class UnsupportedCharacters(ValueError):
    """The terms hold characters the embedded font cannot draw; `characters` lists them."""

    def __init__(self, characters: list[str]) -> None:
        self.characters = characters
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in characters)
        super().__init__(f"the lease font (DejaVu Sans) has no glyph for {listed}")


def long_date(day: dt.date) -> str:
    """2025-03-01 -> 'March 1, 2025', whatever the process locale."""
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def dollars(amount: int) -> str:
    return f"${amount:,}"


async def render_lease_pdf(terms: LeaseTerms, *, created_at: dt.datetime | None = None) -> bytes:
    """The lease summary as PDF bytes, rendered in a worker thread; `created_at` (default now) is the file's
    creation date. Raises UnsupportedCharacters when the font cannot show part of the terms."""
    when = created_at if created_at is not None else dt.datetime.now(dt.UTC)
    return await asyncio.to_thread(render_lease_pdf_sync, terms, when)


def render_lease_pdf_sync(terms: LeaseTerms, created_at: dt.datetime) -> bytes:
    """`render_lease_pdf` without the thread: blocks for the whole render."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    pdf = _LeasePDF(terms.lease_id)
    pdf.set_creation_date(created_at.astimezone(dt.UTC))
    pdf.set_title(f"Lease summary {terms.lease_id}")
    pdf.set_subject(f"Lease of {terms.property_address} to {terms.tenant_name}")
    pdf.set_author(terms.manager_name)
    pdf.set_creator("propbot")
    for style, path in _FONT_FILES.items():
        pdf.add_font(_FAMILY, style, path)
    _check_glyphs(pdf, terms)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.add_page()
    _write_body(pdf, terms)
    return bytes(pdf.output())


class _LeasePDF(FPDF):
    def __init__(self, lease_id: str) -> None:
        # US Letter: the portfolio is in the US.
        super().__init__(orientation="portrait", unit="mm", format="letter")
        self._lease_id = lease_id
        self.set_margins(left=22, top=20, right=22)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(_FAMILY, "", 8)
        self.set_text_color(110)
        self.cell(0, 5, f"Lease {self._lease_id} · page {self.page_no()} of {{nb}}", align="C")


def _check_glyphs(pdf: FPDF, terms: LeaseTerms) -> None:
    fonts = [pdf.fonts[f"{_FAMILY.lower()}{style}"] for style in _FONT_FILES]
    text = "".join(str(value) for value in terms.model_dump().values() if value is not None)
    missing = sorted(
        c
        for c in set(text)
        if not c.isspace() and any(not isinstance(f, TTFFont) or ord(c) not in f.cmap for f in fonts)
    )
    if missing:
        raise UnsupportedCharacters(missing)


def _write_body(pdf: FPDF, terms: LeaseTerms) -> None:
    width = pdf.epw
    pdf.set_font(_FAMILY, "B", 18)
    pdf.cell(width, 10, "Residential Lease Summary", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, "", 10.5)
    pdf.set_text_color(90)
    pdf.cell(
        width, _LINE, f"Lease {terms.lease_id} · Property {terms.property_id}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_text_color(0)
    pdf.ln(2)
    pdf.multi_cell(
        width,
        _LINE,
        "This summary restates the key terms of the residential lease between the parties below. "
        "The signed lease agreement governs where the two differ.",
    )

    _heading(pdf, "1. Parties")
    _field(pdf, "Property manager", f"{terms.manager_name}, for the owner of the premises")
    _field(pdf, "Tenant", terms.tenant_name)
    _field(pdf, "Email", terms.tenant_email)
    if terms.tenant_phone is not None:
        _field(pdf, "Phone", terms.tenant_phone)

    _heading(pdf, "2. Premises")
    _field(pdf, "Address", terms.property_address)
    _field(pdf, "Property ID", terms.property_id)

    _heading(pdf, "3. Term")
    _field(pdf, "Start date", long_date(terms.start_date))
    _field(pdf, "End date", long_date(terms.end_date))

    _heading(pdf, "4. Rent and deposit")
    _field(pdf, "Monthly rent", f"{dollars(terms.monthly_rent)} per month")
    _field(pdf, "Security deposit", dollars(terms.deposit))

    _heading(pdf, "5. Signatures", keep_with=_SIGNATURE_HEIGHT)
    # Keep a signature block whole: break before it rather than across its lines.
    for role, name in (("Tenant", terms.tenant_name), ("Property manager", terms.manager_name)):
        if pdf.will_page_break(_SIGNATURE_HEIGHT):
            pdf.add_page()
        pdf.ln(12)
        x, y = pdf.get_x(), pdf.get_y()
        pdf.line(x, y, x + 100, y)
        pdf.line(x + 110, y, x + width, y)
        pdf.set_font(_FAMILY, "", 9)
        pdf.set_xy(x + 110, y + 1)
        pdf.cell(width - 110, 5, "Date")
        # The name may be long enough to wrap: it keeps to the space under its own line.
        pdf.set_xy(x, y + 1)
        pdf.multi_cell(100, 5, f"{role}: {name}", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _heading(pdf: FPDF, text: str, keep_with: float = 2 * _LINE) -> None:
    # A heading stays on the page of what follows it (`keep_with` mm of it), never alone at the bottom.
    if pdf.will_page_break(12 + keep_with):
        pdf.add_page()
    else:
        pdf.ln(4)
    pdf.set_font(_FAMILY, "B", 12.5)
    pdf.cell(pdf.epw, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _field(pdf: FPDF, label: str, value: str) -> None:
    pdf.set_font(_FAMILY, "B", 10.5)
    pdf.cell(_LABEL_WIDTH, _LINE, label)
    pdf.set_font(_FAMILY, "", 10.5)
    pdf.multi_cell(pdf.epw - _LABEL_WIDTH, _LINE, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
