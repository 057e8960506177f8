"""Phone numbers: parse whatever a phone system or a person delivers, and list how Salesforce may store it.

Salesforce keeps a phone field exactly as typed and SOQL compares it as a string, so finding a
caller means asking for every string a person may have typed for that number. Why the variant set
looks the way it does, and every written form the parser reads, is in docs/phone-numbers.md.
"""
import enum
import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

DEFAULT_REGION = "JP"

# Longer input is never one phone field (Salesforce caps a Phone field at 40 characters; E.164 at
# 15 digits): refusing it before any parsing keeps hostile 5,000-character input cheap.
MAX_INPUT_CHARS = 64
MAX_DIGITS = 17
MAX_EXTENSION_DIGITS = 8
DISPLAY_CHARS = 40
EXHAUSTIVE_LIMIT = 150

# Every dash and hyphen people type or paste for the separators of a phone number, including the
# katakana long vowel mark (full and half width) and the minus signs Japanese IMEs produce.
_DASHES = "-‐‑‒–—―−ーｰ－﹣﹘⁃˗⁻₋⸺⸻"
# Every bracket pair a number's area code or a note gets wrapped in. Braces stay out: they are
# SOSL syntax and nobody writes a number in them.
_OPENING = "[［【〔〖〘〚「『〈《⦅｟﹙⁽₍❨❪﹝（"
_CLOSING = "]］】〕〗〙〛」』〉》⦆｠﹚⁾₎❩❫﹞）"
_PLUSES = "＋﹢⁺₊"
# Every space separator (Unicode category Zs: NBSP, thin and hair spaces, the ideographic space).
_SPACES = "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
          "\u202f\u205f\u3000"
_FOLD = str.maketrans({**{ch: "-" for ch in _DASHES}, **{ch: "(" for ch in _OPENING},
                       **{ch: ")" for ch in _CLOSING}, **{ch: "+" for ch in _PLUSES},
                       **{ch: " " for ch in _SPACES}})
# Only these may remain once notes and the extension are set apart; anything else (letters,
# quotes, braces, markup) means the text is not a phone number, even if phonenumbers could dig
# one out of it.
_NUMBER_CHARS = re.compile(r"^[0-9+()\-. /]*$")
_EXTENSION = re.compile(
    r"\(?\s*(?:内線番号|内線|内|extension|extn|ext\.?|ex\.|x|#|;ext=|,)\s*[:]?\s*"
    r"([0-9]{1,%d})\s*\)?$" % MAX_EXTENSION_DIGITS, re.IGNORECASE)
_URI = re.compile(r"^<?(?:sips?|tel):([^@;>]*)(?:;ext=([0-9]+))?", re.IGNORECASE)
_WORD_NOISE = re.compile(r"[\s_\-.()\[\]<>\"']+")
_FULLWIDTH_DIGITS = str.maketrans("0123456789+", "０１２３４５６７８９＋")

# Labels and notes people write around a number in a phone field ("TEL 03-...", "03-...（代表）").
# Only these words are dropped; any other word leaves the value INVALID, so free text never turns
# into a number. Matched after NFKC folding, so "ＴＥＬ" and "℡" arrive here as "TEL".
_NOTE_WORDS_ASCII = (
    "telephone", "phone", "tel", "ph", "fax", "mobile", "mob", "cellphone", "cell", "office",
    "main", "home", "work", "direct", "dial", "hq", "landline", "no", "number",
)
_NOTE_WORDS_JA = (
    "電話番号", "電話", "代表番号", "代表", "直通番号", "直通", "直電", "携帯電話", "携帯番号", "携帯",
    "ケータイ", "スマホ", "自宅", "会社", "本社", "支社", "支店", "事務所", "営業所", "店舗", "勤務先",
    "固定電話", "固定", "緊急連絡先", "連絡先", "番号", "呼出", "呼び出し", "ファックス", "ファクス",
    "平日", "日中", "夜間", "休日", "受付", "窓口", "担当", "本人", "☎", "☏", "✆", "📞", "📱",
)
_NOTES = re.compile(
    "(?:(?<![a-z])(?:%s)(?![a-z])|%s)\\.?\\s*:?" % (
        "|".join(sorted(_NOTE_WORDS_ASCII, key=len, reverse=True)),
        "|".join(re.escape(w) for w in sorted(_NOTE_WORDS_JA, key=len, reverse=True))),
    re.IGNORECASE)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)")
# What separates two numbers in one field ("03-1234-5678 / 090-1111-2222"). A comma is tried
# last: on its own it usually introduces an extension (",12", what a phone dials after a pause).
_SEPARATORS = str.maketrans({"/": "\n", "・": "\n", "、": "\n", ";": "\n", "|": "\n"})
MAX_NUMBERS_PER_FIELD = 4

# What phone systems put in caller ID when there is no number to show. The single letters are
# NTT's number-display reason codes: P withheld, O out of area, C pay phone, S service conflict.
WITHHELD_WORDS = frozenset({
    "anonymous", "anonymouscaller", "withheld", "numberwithheld", "private", "privatenumber",
    "privatecaller", "unavailable", "notavailable", "unknown", "unknowncaller", "unknownnumber",
    "restricted", "blocked", "calleridblocked", "nocallerid", "outofarea", "payphone",
    "p", "o", "c", "s", "非通知", "非通知設定", "通知不可", "通知不可能", "表示圏外", "公衆電話",
    "番号非通知", "番号通知なし",
})


class NumberKind(str, enum.Enum):
    """What a delivered number turned out to be."""

    VALID = "valid"
    WITHHELD = "withheld"
    EMPTY = "empty"
    INVALID = "invalid"


@dataclass(frozen=True)
class PhoneNumber:
    """A parsed number: the E.164 key when valid, and what a screen may show in any case."""

    raw: str
    kind: NumberKind
    e164: str | None = None
    extension: str | None = None
    region: str | None = None
    display: str = ""


# ---- parsing --------------------------------------------------------------------------------


def parse_phone(raw, default_region=DEFAULT_REGION):
    """Parse a number as delivered or as stored; never raises, whatever `raw` is."""
    try:
        text = _as_text(raw)
    except Exception:
        return PhoneNumber(raw="", kind=NumberKind.INVALID, display="")
    if text is None:
        return PhoneNumber(raw="", kind=NumberKind.EMPTY, display="")
    region = _region(default_region)
    if len(text) > MAX_INPUT_CHARS:
        return PhoneNumber(raw=text, kind=NumberKind.INVALID, display=safe_display(text))
    try:
        return _parse_text(text, region)
    except Exception:
        return _invalid(text)


def index_keys(raw, default_region=DEFAULT_REGION):
    """E.164 keys of every number a stored field value holds, in order; [] when it holds none.

    "03-1234-5678 / 090-1111-2222" gives both numbers; extensions and notes are ignored. Never
    raises. A value any part of which is not a number (free text, markup) gives [].
    """
    try:
        text = _as_text(raw)
        if text is None or len(text) > MAX_INPUT_CHARS:
            return []
        return list(_index_keys(text, _region(default_region)))
    except Exception:
        return []


def _region(default_region):
    # The region is copied like the number: a str subclass whose __hash__ or __eq__ raises must
    # not reach the set lookup, nor the parse cache, whose key it would be.
    try:
        region = _as_text(default_region)
        return region if region in phonenumbers.SUPPORTED_REGIONS else DEFAULT_REGION
    except Exception:  # an object whose str() raises, or holds a lone surrogate
        return DEFAULT_REGION


def _as_text(raw):
    # A str or bytes subclass may override every method, __str__ and slicing included: copy the
    # value through the base type's own methods before anything else touches it.
    if raw is None:
        return None
    if isinstance(raw, str):
        return str.__str__(raw)
    if isinstance(raw, (bytes, bytearray)):
        return bytes.decode(bytes(memoryview(raw)[:MAX_INPUT_CHARS * 4]), "utf-8", errors="replace")
    if isinstance(raw, bool):
        return repr(raw)
    return str.__str__(str(raw))


@functools.lru_cache(maxsize=8192)
def _parse_text(text, region):
    # Cached: the same few numbers ring many times a day, and the resolver parses each stored
    # value it compares. Inputs are capped before they get here, so entries stay small.
    if not text.strip():
        return PhoneNumber(raw=text, kind=NumberKind.EMPTY, display="")
    folded = fold(text)
    if _is_withheld(folded):
        return PhoneNumber(raw=text, kind=NumberKind.WITHHELD, display=safe_display(text))
    found = _read_one(_strip_uri(folded), region)
    if found is None:
        return _invalid(text)
    parsed, extension = found
    return _valid(text, parsed, extension, region)


@functools.lru_cache(maxsize=8192)
def _index_keys(text, region):
    folded = _strip_uri(fold(text))
    if not folded or _is_withheld(folded):
        return ()
    numbers = _read_all(folded, region)
    return tuple(dict.fromkeys(_e164(parsed) for parsed, _ in numbers))


def _invalid(text):
    return PhoneNumber(raw=text, kind=NumberKind.INVALID, display=safe_display(text))


def fold(text):
    """Full-width characters, every kind of dash, bracket, plus and space brought to plain ASCII."""
    return unicodedata.normalize("NFKC", text.translate(_FOLD)).translate(_FOLD).strip()


def _is_withheld(folded):
    word = _WORD_NOISE.sub("", _strip_uri(folded)).lower()
    return word in WITHHELD_WORDS


def _strip_uri(text):
    # SIP trunks deliver "sip:+81312345678@host" or "sip:anonymous@anonymous.invalid".
    match = _URI.match(text)
    if not match:
        return text
    user, extension = match.group(1), match.group(2)
    return f"{user} ext {extension}" if extension else user


def _drop_notes(text):
    text = _NOTES.sub(" ", text)
    while True:
        bare = _EMPTY_BRACKETS.sub(" ", text)
        if bare == text:
            return text.strip()
        text = bare


def _read_one(text, region):
    """(parsed, extension) when `text` is exactly one number with notes around it, else None."""
    body, extension = _split_extension(_drop_notes(text))
    if not body or not _NUMBER_CHARS.match(body) or not _digit_count_ok(body):
        return None
    parsed = _parse_number(body, region)
    return None if parsed is None else (parsed, extension)


def _read_all(text, region):
    """Every (parsed, extension) in a field value that holds one or more numbers, else []."""
    one = _read_one(text, region)
    if one is not None:
        return [one]
    found = []
    for part in text.translate(_SEPARATORS).split("\n"):
        if not _drop_notes(part):
            continue
        one = _read_one(part, region)
        pieces = [one] if one is not None else [_read_one(p, region) for p in part.split(",")]
        if not pieces or None in pieces:
            return []
        found += pieces
    return found if len(found) <= MAX_NUMBERS_PER_FIELD else []


def _split_extension(text):
    match = _EXTENSION.search(text)
    if not match:
        return text.strip(), None
    return text[:match.start()].strip(), match.group(1)


def _digit_count_ok(body):
    count = sum(ch.isdigit() for ch in body)
    return 0 < count <= MAX_DIGITS


def _parse_number(body, region):
    # "+" numbers carry their country; anything else is read as dialled in `region`, which also
    # strips its international prefix (010 in Japan) and a bare country code ("81312345678").
    # A number that is not valid that way but starts with "00" is read with "00" as the
    # international prefix most of the world dials ("0081-3-1234-5678", "0044 20 7946 0958"):
    # Japan's own numbers starting 00 (0037, 00777...) are tried first and win.
    parsed = _parse_valid(body, None if body.startswith("+") else region)
    if parsed is None and body.startswith("00"):
        parsed = _parse_valid("+" + body[2:], None)
    return parsed


def _parse_valid(body, region):
    try:
        parsed = phonenumbers.parse(body, region)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def _e164(parsed):
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def _valid(text, parsed, extension, default_region):
    region = phonenumbers.region_code_for_number(parsed)
    parsed.extension = None
    e164 = _e164(parsed)
    style = PhoneNumberFormat.NATIONAL if region == default_region else PhoneNumberFormat.INTERNATIONAL
    display = phonenumbers.format_number(parsed, style)
    if extension:
        display += (" 内線 " if default_region == "JP" else " ext. ") + extension
    return PhoneNumber(raw=text, kind=NumberKind.VALID, e164=e164, extension=extension,
                       region=region, display=display)


def safe_display(text):
    """A printable rendering of any input: control and format characters gone, at most 40 chars."""
    if not isinstance(text, str):
        return ""
    text = text[:DISPLAY_CHARS * 4]
    kept = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or unicodedata.category(ch)[0] != "C")
    return " ".join(kept.split())[:DISPLAY_CHARS]


# ---- stored variants ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """The digit groups a number is written in, nationally and internationally."""

    cc: str
    e164: str
    national: str            # phonenumbers' national format: "03-1234-5678", "(415) 555-1212"
    international: str       # "+81 3-1234-5678"
    groups: tuple            # national digit groups: ("03", "1234", "5678")
    igroups: tuple           # international digit groups after the country code: ("3", "1234", "5678")
    trunk: str               # national prefix shown in the national format ("0"), or ""
    is_jp: bool
    fixed_line: bool


def _shape(number):
    parsed = phonenumbers.parse(number.e164, None)
    national = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
    groups = tuple(re.findall(r"[0-9]+", national))
    igroups = tuple(re.findall(r"[0-9]+", international))[1:]
    nsn = phonenumbers.national_significant_number(parsed)
    joined = "".join(groups)
    trunk = joined[:-len(nsn)] if joined.endswith(nsn) else ""
    kind = phonenumbers.number_type(parsed)
    return _Shape(cc=str(parsed.country_code), e164=number.e164, national=national,
                  international=international, groups=groups, igroups=igroups, trunk=trunk,
                  is_jp=number.region == "JP",
                  fixed_line=kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE))


def stored_variants(number, exhaustive=False):
    """The strings Salesforce may hold for `number`, most common first; [] unless it is VALID."""
    if not isinstance(number, PhoneNumber) or number.kind is not NumberKind.VALID:
        return []
    shape = _shape(number)
    found = _ordered(itertools.chain(_national_forms(shape), _international_forms(shape),
                                     _fullwidth_forms(shape), _regrouped_forms(shape),
                                     _dialled_from_abroad_forms(shape)))
    if exhaustive:
        found = _ordered(itertools.chain(found, _odd_hyphen_forms(shape)))[:EXHAUSTIVE_LIMIT]
    return found


def _ordered(items):
    return list(dict.fromkeys(item for item in items if item))


def _national_forms(s):
    g = s.groups
    yield s.national
    yield "-".join(g)
    yield "".join(g)
    yield " ".join(g)
    yield ".".join(g)
    if len(g) >= 2:
        yield f"({g[0]}) {'-'.join(g[1:])}"
        yield f"({g[0]}){'-'.join(g[1:])}"
    if len(g) == 3:
        yield f"{g[0]}({g[1]}){g[2]}"
    if s.is_jp:
        # The hyphen a Japanese IME types in full-width mode, between half-width digits.
        yield "－".join(g)
        yield "−".join(g)
        yield "ー".join(g)


def _international_forms(s):
    ig = s.igroups
    yield s.e164
    yield s.international
    yield f"+{s.cc}-{'-'.join(ig)}"
    yield f"+{s.cc} {' '.join(ig)}"
    yield f"+{s.cc} {''.join(ig)}"
    yield f"+{s.cc}{'-'.join(ig)}"
    if s.trunk:
        yield f"+{s.cc} ({s.trunk}){'-'.join(ig)}"
    if not s.trunk and len(ig) >= 2:
        yield f"+{s.cc} ({ig[0]}) {'-'.join(ig[1:])}"
        yield f"{s.cc}-{'-'.join(ig)}"
        yield f"{s.cc} ({ig[0]}) {'-'.join(ig[1:])}"
    yield f"{s.cc}{''.join(ig)}"


def _fullwidth_forms(s):
    g = [group.translate(_FULLWIDTH_DIGITS) for group in s.groups]
    yield "-".join(g)
    yield "－".join(g)
    yield "ー".join(g)
    yield "−".join(g)
    yield "".join(g)
    yield s.e164.translate(_FULLWIDTH_DIGITS)


def _regrouped_forms(s):
    # Only the area code set apart ("03-12345678"), or only the subscriber number ("031234-5678").
    g = s.groups
    if len(g) >= 3:
        yield f"{g[0]}-{''.join(g[1:])}"
        yield f"{''.join(g[:-1])}-{g[-1]}"
    if s.is_jp and s.fixed_line and len(s.trunk + "".join(s.igroups)) == 10:
        # Japanese area codes run from 2 to 5 digits and people write the one they know, which
        # need not be the one phonenumbers' metadata picks: offer every split of the first six.
        digits = "".join(g)
        for cut in range(2, 6):
            yield f"{digits[:cut]}-{digits[cut:6]}-{digits[6:]}"


def _dialled_from_abroad_forms(s):
    # Foreign numbers saved by people in Japan often carry the 010 international prefix.
    if s.is_jp:
        return
    ig = s.igroups
    yield f"010-{s.cc}-{'-'.join(ig)}"
    yield f"010{s.cc}{''.join(ig)}"


def _odd_hyphen_forms(s):
    national = "".join(s.groups)
    for count in (1, 2):
        for cuts in itertools.combinations(range(1, len(national)), count):
            yield _hyphenate(national, cuts)
    nsn = "".join(s.igroups)
    for cut in range(1, len(nsn)):
        yield f"+{s.cc} {_hyphenate(nsn, (cut,))}"


def _hyphenate(digits, cuts):
    bounds = (0, *cuts, len(digits))
    return "-".join(digits[a:b] for a, b in zip(bounds, bounds[1:]))


# ---- comparisons ----------------------------------------------------------------------------


def stored_matches(stored, number):
    """True when a stored field value holds `number` (compared on E.164; also one of several)."""
    if not isinstance(number, PhoneNumber) or number.kind is not NumberKind.VALID:
        return False
    regions = dict.fromkeys((DEFAULT_REGION, number.region or DEFAULT_REGION))
    return any(number.e164 in index_keys(stored, region) for region in regions)


def digits_key(value, default_region=DEFAULT_REGION):
    """National significant digits of a number ("312345678"), or its bare ASCII digits when invalid."""
    if isinstance(value, PhoneNumber):
        number = value
    else:
        number = parse_phone(value, default_region)
    if number.kind is NumberKind.VALID:
        return _national_significant(number.e164)
    if number.kind is not NumberKind.INVALID:
        return ""
    return "".join(ch for ch in fold(number.raw) if "0" <= ch <= "9")[:MAX_DIGITS]


@functools.lru_cache(maxsize=8192)
def _national_significant(e164):
    return phonenumbers.national_significant_number(phonenumbers.parse(e164, None))
