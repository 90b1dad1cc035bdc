"""Every catalog under locale/ is complete and its committed .mo is the compiled .po.

The UI is pt-BR with English available: an empty or fuzzy msgstr shows Portuguese to an
English reader (fuzzy entries are left out of the .mo), and a .po edited without recompiling
changes nothing at run time. The .po is read here in Python (no GNU gettext needed on CI) and
compared, entry by entry, with the catalog gettext loads from the .mo.
"""

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parents[2] / "locale"
CATALOGS = sorted(LOCALE.glob("*/LC_MESSAGES/django.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]")


@dataclass
class Entry:
    line: int
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def _unquote(text: str, where: int) -> str:
    text = text.strip()
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"line {where}: expected a quoted string, got {text!r}")
    return ast.literal_eval(text)


def parse_po(text: str) -> list[Entry]:
    """The live (not obsolete) entries of a .po file, header included."""
    entries: list[Entry] = []
    current: Entry | None = None
    flags: set[str] = set()
    target: tuple[str, int | None] | None = None

    def close() -> None:
        nonlocal current
        if current is not None:
            entries.append(current)
        current = None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            close()
            target = None
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#,"):
            close()
            flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.startswith('"'):
            if current is None or target is None:
                raise ValueError(f"line {number}: continuation outside an entry")
            value = _unquote(line, number)
            name, index = target
            if name == "msgstr":
                current.msgstr[index] += value
            else:
                setattr(current, name, getattr(current, name) + value)
            continue
        if keyword in ("msgctxt", "msgid") and (
            current is None or keyword == "msgctxt" or current.msgstr
        ):
            close()
            current = Entry(line=number, flags=flags)
            flags = set()
        if current is None:
            raise ValueError(f"line {number}: {keyword} outside an entry")
        value = _unquote(rest, number)
        if keyword in ("msgctxt", "msgid", "msgid_plural"):
            setattr(current, keyword, value)
            target = (keyword, None)
        elif keyword == "msgstr":
            current.msgstr[0] = value
            target = ("msgstr", 0)
        elif (plural := re.fullmatch(r"msgstr\[(\d+)\]", keyword)) is not None:
            current.msgstr[int(plural.group(1))] = value
            target = ("msgstr", int(plural.group(1)))
        else:
            raise ValueError(f"line {number}: unknown keyword {keyword!r}")
    close()
    return entries


def problems(entries: list[Entry]) -> list[str]:
    """What keeps a catalog from being complete: empty, fuzzy, placeholders changed."""
    found = []
    for entry in entries:
        if entry.msgid == "" and entry.msgctxt is None:
            continue  # the header
        name = f"line {entry.line} {entry.msgid[:60]!r}"
        if "fuzzy" in entry.flags:
            found.append(f"{name}: fuzzy")
        if not entry.msgstr or any(not text for text in entry.msgstr.values()):
            found.append(f"{name}: empty msgstr")
        if entry.msgid_plural is not None and sorted(entry.msgstr) != [0, 1]:
            found.append(f"{name}: needs msgstr[0] and msgstr[1]")
        wanted = set(PLACEHOLDER.findall(entry.msgid))
        if entry.msgid_plural is not None:
            wanted |= set(PLACEHOLDER.findall(entry.msgid_plural))
        for text in entry.msgstr.values():
            if text and set(PLACEHOLDER.findall(text)) - wanted:
                found.append(f"{name}: placeholders {sorted(PLACEHOLDER.findall(text))}")
            if entry.msgid_plural is None and text and set(PLACEHOLDER.findall(text)) != wanted:
                found.append(f"{name}: placeholders differ from the msgid's {sorted(wanted)}")
    return found


def expected_catalog(entries: list[Entry]) -> dict:
    """The mapping gettext builds from a .mo compiled from these entries (fuzzy left out)."""
    catalog: dict = {}
    for entry in entries:
        if "fuzzy" in entry.flags and entry.msgid:
            continue
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if key == "":  # msgfmt leaves the extraction date out of the compiled header
            lines = entry.msgstr.get(0, "").splitlines(keepends=True)
            catalog[key] = "".join(x for x in lines if not x.startswith("POT-Creation-Date:"))
        elif entry.msgid_plural is None:
            if entry.msgstr.get(0):
                catalog[key] = entry.msgstr[0]
        elif all(entry.msgstr.values()):
            for index, text in entry.msgstr.items():
                catalog[(key, index)] = text
    return catalog


def test_there_are_catalogs_to_check():
    assert {path.parts[-3] for path in CATALOGS} >= {"en", "pt_BR"}


@pytest.mark.parametrize("po", CATALOGS, ids=lambda path: path.parts[-3])
def test_every_message_is_translated_and_none_is_fuzzy(po):
    entries = parse_po(po.read_text(encoding="utf-8"))
    assert len(entries) > 1
    assert problems(entries) == []


@pytest.mark.parametrize("po", CATALOGS, ids=lambda path: path.parts[-3])
def test_the_committed_mo_is_the_compiled_po(po):
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo} missing: run make messages"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog
    expected = expected_catalog(parse_po(po.read_text(encoding="utf-8")))
    assert set(expected) - set(compiled) == set(), "in the .po, not in the .mo: recompile"
    assert set(compiled) - set(expected) == set(), "in the .mo, not in the .po: recompile"
    changed = [key for key in expected if expected[key] != compiled[key]]
    assert changed == [], "msgstr changed since the .mo was compiled: recompile"


SAMPLE = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

msgid "semana %(code)s"
msgstr "week %(code)s"

#, fuzzy, python-format
msgid "fechamento"
msgstr "closing"

msgid "caso"
msgstr ""

msgid "selo %(code)s"
msgstr "seal %(kode)s"

msgctxt "menu"
msgid ""
"agente"
msgstr "agent"

msgid "%(n)s erro"
msgid_plural "%(n)s erros"
msgstr[0] "%(n)s error"
msgstr[1] ""

#~ msgid "velho"
#~ msgstr ""
"""


def test_the_checks_catch_fuzzy_empty_and_changed_placeholders():
    """The checks above are not vacuous: each kind of fault in a sample is named."""
    entries = parse_po(SAMPLE)
    assert [entry.msgid for entry in entries] == [
        "",
        "semana %(code)s",
        "fechamento",
        "caso",
        "selo %(code)s",
        "agente",
        "%(n)s erro",
    ]
    assert entries[5].msgctxt == "menu"
    found = problems(entries)
    assert any("'fechamento': fuzzy" in text for text in found)
    assert any("'caso': empty msgstr" in text for text in found)
    assert any("'selo %(code)s': placeholders" in text for text in found)
    assert any("'%(n)s erro': empty msgstr" in text for text in found)
    assert not any("semana" in text or "agente" in text for text in found)
    catalog = expected_catalog(entries)
    assert catalog["semana %(code)s"] == "week %(code)s"
    assert "fechamento" not in catalog and "caso" not in catalog
    assert catalog["menu\x04agente"] == "agent"
    assert ("%(n)s erro", 0) not in catalog
