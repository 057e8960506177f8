"""core/phone.py: every input gives a typed answer, and every stored format finds its number."""
import random
import time

import pytest

from core.phone import (
    EXHAUSTIVE_LIMIT, NumberKind, PhoneNumber, digits_key, index_keys, parse_phone, stored_matches,
    stored_variants,
)

V, W, E, I = NumberKind.VALID, NumberKind.WITHHELD, NumberKind.EMPTY, NumberKind.INVALID
TOKYO = "+81312345678"

# (raw, kind, e164, extension, display)
TABLE = [
    # Tokyo, in every way people and phone systems write it
    ("03-1234-5678", V, TOKYO, None, "03-1234-5678"),
    ("0312345678", V, TOKYO, None, "03-1234-5678"),
    ("+81312345678", V, TOKYO, None, "03-1234-5678"),
    ("+81 3-1234-5678", V, TOKYO, None, "03-1234-5678"),
    ("+81-3-1234-5678", V, TOKYO, None, "03-1234-5678"),
    ("+81 3 1234 5678", V, TOKYO, None, "03-1234-5678"),
    ("+81 (0)3-1234-5678", V, TOKYO, None, "03-1234-5678"),
    # a doubled "+" is one "+" to libphonenumber (its testParseWithInternationalPrefixes
    # asserts "++1 (650) 253-0000" is the US number), so it stays a legitimate form here
    ("++81312345678", V, TOKYO, None, "03-1234-5678"),
    ("81312345678", V, TOKYO, None, "03-1234-5678"),
    ("(03) 1234-5678", V, TOKYO, None, "03-1234-5678"),
    ("(03)1234-5678", V, TOKYO, None, "03-1234-5678"),
    ("03(1234)5678", V, TOKYO, None, "03-1234-5678"),
    ("03 1234 5678", V, TOKYO, None, "03-1234-5678"),
    ("03.1234.5678", V, TOKYO, None, "03-1234-5678"),
    ("031-234-5678", V, TOKYO, None, "03-1234-5678"),
    ("0312-34-5678", V, TOKYO, None, "03-1234-5678"),
    ("03-12345678", V, TOKYO, None, "03-1234-5678"),
    ("  03-1234-5678  ", V, TOKYO, None, "03-1234-5678"),
    ("03-1234-5678\r\n", V, TOKYO, None, "03-1234-5678"),
    ("\t03-1234-5678", V, TOKYO, None, "03-1234-5678"),
    # every dash people use
    ("03‐1234‐5678", V, TOKYO, None, "03-1234-5678"),
    ("03−1234−5678", V, TOKYO, None, "03-1234-5678"),
    ("03ー1234ー5678", V, TOKYO, None, "03-1234-5678"),
    ("03―1234―5678", V, TOKYO, None, "03-1234-5678"),
    ("03‑1234‑5678", V, TOKYO, None, "03-1234-5678"),
    ("03－1234－5678", V, TOKYO, None, "03-1234-5678"),
    ("03–1234–5678", V, TOKYO, None, "03-1234-5678"),
    ("03—1234—5678", V, TOKYO, None, "03-1234-5678"),
    ("03ｰ1234ｰ5678", V, TOKYO, None, "03-1234-5678"),
    # full-width everything
    ("０３－１２３４－５６７８", V, TOKYO, None, "03-1234-5678"),
    ("０３ー１２３４ー５６７８", V, TOKYO, None, "03-1234-5678"),
    ("０３１２３４５６７８", V, TOKYO, None, "03-1234-5678"),
    ("（０３）１２３４－５６７８", V, TOKYO, None, "03-1234-5678"),
    ("＋８１　３－１２３４－５６７８", V, TOKYO, None, "03-1234-5678"),
    ("＋８１３１２３４５６７８", V, TOKYO, None, "03-1234-5678"),
    ("０３　１２３４　５６７８", V, TOKYO, None, "03-1234-5678"),
    # extensions, kept apart
    ("03-1234-5678 内線123", V, TOKYO, "123", "03-1234-5678 内線 123"),
    ("03-1234-5678 内線：45", V, TOKYO, "45", "03-1234-5678 内線 45"),
    ("03-1234-5678 ext. 45", V, TOKYO, "45", "03-1234-5678 内線 45"),
    ("03-1234-5678 EXT 7", V, TOKYO, "7", "03-1234-5678 内線 7"),
    ("03-1234-5678 x101", V, TOKYO, "101", "03-1234-5678 内線 101"),
    ("03-1234-5678#9", V, TOKYO, "9", "03-1234-5678 内線 9"),
    ("０３－１２３４－５６７８　内線　２０１", V, TOKYO, "201", "03-1234-5678 内線 201"),
    ("tel:+81-3-1234-5678;ext=12", V, TOKYO, "12", "03-1234-5678 内線 12"),
    ("sip:+81312345678@pbx.example.jp", V, TOKYO, None, "03-1234-5678"),
    # Japanese number ranges
    ("06-1234-5678", V, "+81612345678", None, "06-1234-5678"),
    ("090-1234-5678", V, "+819012345678", None, "090-1234-5678"),
    ("080-9876-5432", V, "+818098765432", None, "080-9876-5432"),
    ("070-1111-2222", V, "+817011112222", None, "070-1111-2222"),
    ("+81 90-1234-5678", V, "+819012345678", None, "090-1234-5678"),
    ("0120-123-456", V, "+81120123456", None, "0120-123-456"),
    ("0120123456", V, "+81120123456", None, "0120-123-456"),
    ("0800-123-4567", V, "+818001234567", None, "0800-123-4567"),
    ("0570-000-111", V, "+81570000111", None, "0570-000-111"),
    ("050-1234-5678", V, "+815012345678", None, "050-1234-5678"),
    ("0422-51-1234", V, "+81422511234", None, "0422-51-1234"),
    ("0466-12-3456", V, "+81466123456", None, "0466-12-3456"),
    ("01267-2-1234", V, "+81126721234", None, "01267-2-1234"),
    ("045-123-4567", V, "+81451234567", None, "045-123-4567"),
    ("092-123-4567", V, "+81921234567", None, "092-123-4567"),
    # foreign numbers, and 010 dialled from Japan
    ("+1 415-555-1212", V, "+14155551212", None, "+1 415-555-1212"),
    ("+1 (415) 555-1212", V, "+14155551212", None, "+1 415-555-1212"),
    ("+14155551212", V, "+14155551212", None, "+1 415-555-1212"),
    ("010-1-415-555-1212", V, "+14155551212", None, "+1 415-555-1212"),
    ("01014155551212", V, "+14155551212", None, "+1 415-555-1212"),
    ("+44 20 7946 0958", V, "+442079460958", None, "+44 20 7946 0958"),
    ("+82 2-312-3456", V, "+8223123456", None, "+82 2-312-3456"),
    ("+86 10 1234 5678", V, "+861012345678", None, "+86 10 1234 5678"),
    ("+65 6123 4567", V, "+6561234567", None, "+65 6123 4567"),
    # withheld, in the words phone systems use
    ("anonymous", W, None, None, "anonymous"),
    ("Anonymous", W, None, None, "Anonymous"),
    ("ANONYMOUS", W, None, None, "ANONYMOUS"),
    ("withheld", W, None, None, "withheld"),
    ("Private", W, None, None, "Private"),
    ("private number", W, None, None, "private number"),
    ("非通知", W, None, None, "非通知"),
    ("unavailable", W, None, None, "unavailable"),
    ("Unknown", W, None, None, "Unknown"),
    ("P", W, None, None, "P"),
    ("O", W, None, None, "O"),
    ("Restricted", W, None, None, "Restricted"),
    ("公衆電話", W, None, None, "公衆電話"),
    ("表示圏外", W, None, None, "表示圏外"),
    ("sip:anonymous@anonymous.invalid", W, None, None, "sip:anonymous@anonymous.invalid"),
    ("<sip:anonymous@anonymous.invalid>", W, None, None, "<sip:anonymous@anonymous.invalid>"),
    # empty
    ("", E, None, None, ""),
    (None, E, None, None, ""),
    ("   ", E, None, None, ""),
    ("\u3000", E, None, None, ""),
    ("\r\n\t", E, None, None, ""),
    # garbage and hostile input
    ("5" * 5000, I, None, None, "5" * 40),
    ("0" * 5000, I, None, None, "0" * 40),
    ("03-1234\x00-5678", I, None, None, "03-1234-5678"),
    ("\x00", I, None, None, ""),
    ("03-1234\r\n-5678", I, None, None, "03-1234 -5678"),
    ("' OR Id != '", I, None, None, "' OR Id != '"),
    ("03-1234-5678' OR Id != '", I, None, None, "03-1234-5678' OR Id != '"),
    ("0312345678\\' OR Name LIKE '%", I, None, None, "0312345678\\' OR Name LIKE '%"),
    ("{03-1234-5678}", I, None, None, "{03-1234-5678}"),
    ("03*} RETURNING User(Id", I, None, None, "03*} RETURNING User(Id"),
    ("<script>alert(1)</script>", I, None, None, "<script>alert(1)</script>"),
    ("😀", I, None, None, "😀"),
    ("---", I, None, None, "---"),
    ("ーーー", I, None, None, "ーーー"),
    ("+", I, None, None, "+"),
    ("0", I, None, None, "0"),
    ("00", I, None, None, "00"),
    ("110", I, None, None, "110"),
    ("12345", I, None, None, "12345"),
    ("03-1234-567", I, None, None, "03-1234-567"),
    ("03-1234-56789", I, None, None, "03-1234-56789"),
    ("0312345678999999", I, None, None, "0312345678999999"),
    ("+999 1234 5678", I, None, None, "+999 1234 5678"),
    ("0120-ABC-DEF", I, None, None, "0120-ABC-DEF"),
    ("null", I, None, None, "null"),
    ("abc 03-1234-5678 xyz", I, None, None, "abc 03-1234-5678 xyz"),
    ("\u202e03-1234-5678", I, None, None, "03-1234-5678"),
    ("03-1234-5678\u200b", I, None, None, "03-1234-5678"),
    ("٠٣١٢٣٤٥٦٧٨", I, None, None, "٠٣١٢٣٤٥٦٧٨"),
    ("x" * 100, I, None, None, "x" * 40),
]


@pytest.mark.parametrize("raw,kind,e164,extension,display", TABLE)
def test_parse_table(raw, kind, e164, extension, display):
    number = parse_phone(raw)
    assert (number.kind, number.e164, number.extension, number.display) == (kind, e164, extension, display)


def test_table_is_big_enough():
    assert len(TABLE) >= 70


@pytest.mark.parametrize("raw", [5, 312345678, 3.5, True, b"03-1234-5678", b"\xff\xfe", object(),
                                 ["03"], {"a": 1}, bytearray(b"0"), float("nan")])
def test_non_string_input_never_raises(raw):
    number = parse_phone(raw)
    assert isinstance(number, PhoneNumber)
    assert number.kind in NumberKind


class Exploding:
    def __str__(self):
        raise RuntimeError("boom")


def test_object_whose_str_raises_is_invalid():
    assert parse_phone(Exploding()).kind is NumberKind.INVALID


def test_bytes_and_ints_are_read_as_numbers():
    assert parse_phone(b"03-1234-5678").e164 == TOKYO
    assert parse_phone(312345678).e164 == TOKYO


def test_valid_number_keeps_raw_and_region():
    number = parse_phone("０３－１２３４－５６７８")
    assert number.raw == "０３－１２３４－５６７８"
    assert number.region == "JP"
    assert parse_phone("+1 415-555-1212").region == "US"


def test_default_region_changes_reading_and_display():
    number = parse_phone("(415) 555-1212", default_region="US")
    assert (number.e164, number.display) == ("+14155551212", "(415) 555-1212")
    assert parse_phone("03-1234-5678", default_region="US").kind is NumberKind.INVALID
    tokyo = parse_phone("+81 3-1234-5678", default_region="US")
    assert tokyo.display == "+81 3-1234-5678"


def test_unknown_default_region_falls_back_to_japan():
    assert parse_phone("03-1234-5678", default_region="XX").e164 == TOKYO
    assert parse_phone("03-1234-5678", default_region=None).e164 == TOKYO


def test_huge_input_is_cheap():
    started = time.perf_counter()
    for i in range(200):
        parse_phone(str(i) + "9" * 5000)
        parse_phone("０" * 5000)
    assert time.perf_counter() - started < 0.5


def test_display_is_short_and_printable_for_anything():
    for raw in ["\x00\x01\x02" * 100, "a\u0085b", "\ud800", "<b>" * 50, "\x1b[31mred"]:
        display = parse_phone(raw).display
        assert len(display) <= 40
        assert all(ch.isprintable() for ch in display)


# ---- stored variants ------------------------------------------------------------------------

SAMPLES = ["03-1234-5678", "06-6123-4567", "090-1234-5678", "080-2345-6789", "070-3456-7890",
           "0120-123-456", "0800-123-4567", "0570-000-111", "050-1234-5678", "0422-51-1234",
           "011-211-2345", "01267-2-1234", "+1 415-555-1212",
           "+44 20 7946 0958", "+82 2-312-3456", "+86 10 1234 5678", "+65 6123 4567"]


@pytest.mark.parametrize("raw", SAMPLES)
def test_every_variant_round_trips(raw):
    number = parse_phone(raw)
    assert number.kind is NumberKind.VALID
    for variant in stored_variants(number, exhaustive=True):
        assert stored_matches(variant, number), variant


@pytest.mark.parametrize("raw", SAMPLES)
def test_variant_sets_are_bounded_ordered_and_unique(raw):
    number = parse_phone(raw)
    default = stored_variants(number)
    exhaustive = stored_variants(number, exhaustive=True)
    assert 15 <= len(default) <= 40
    assert len(default) < len(exhaustive) <= EXHAUSTIVE_LIMIT
    assert len(set(default)) == len(default) and len(set(exhaustive)) == len(exhaustive)
    assert exhaustive[:len(default)] == default
    assert stored_variants(parse_phone(raw)) == default


@pytest.mark.parametrize("raw", SAMPLES)
def test_variants_are_safe_in_soql_and_sosl(raw):
    for variant in stored_variants(parse_phone(raw), exhaustive=True):
        assert not set(variant) & set("'\"\\{}%_*?&|!^~:;<>\n\r\x00")


REALISTIC_TOKYO = [
    "03-1234-5678", "0312345678", "+81312345678", "+81 3-1234-5678", "+81-3-1234-5678",
    "+81 3 1234 5678", "+81 (0)3-1234-5678", "(03) 1234-5678", "(03)1234-5678", "03(1234)5678",
    "03 1234 5678", "03.1234.5678", "０３-１２３４-５６７８", "０３－１２３４－５６７８",
    "０３ー１２３４ー５６７８", "０３１２３４５６７８", "03－1234－5678", "03-12345678", "+813-1234-5678",
    "81312345678",
]


def test_realistic_stored_strings_are_in_the_default_set():
    variants = stored_variants(parse_phone("+81312345678"))
    assert [s for s in REALISTIC_TOKYO if s not in variants] == []


def test_odd_hyphens_are_in_the_exhaustive_set_only():
    number = parse_phone("03-1234-5678")
    odd = ["031-234-5678", "0312-34-5678", "03123-45678", "0-312345678"]
    assert not set(odd) <= set(stored_variants(number))
    assert set(odd) <= set(stored_variants(number, exhaustive=True))


def test_mobile_and_toll_free_realistic_forms():
    mobile = stored_variants(parse_phone("09012345678"))
    for s in ["090-1234-5678", "09012345678", "+81 90-1234-5678", "+81-90-1234-5678",
              "+819012345678", "０９０－１２３４－５６７８", "090 1234 5678", "(090) 1234-5678"]:
        assert s in mobile
    free = stored_variants(parse_phone("0120123456"))
    for s in ["0120-123-456", "0120123456", "０１２０－１２３－４５６", "+81 120-123-456"]:
        assert s in free


def test_four_digit_area_codes_offer_every_japanese_split():
    variants = stored_variants(parse_phone("0422-12-3456"))
    for s in ["0422-12-3456", "042-212-3456", "04-2212-3456", "04221-2-3456"]:
        assert s in variants


def test_us_number_forms():
    variants = stored_variants(parse_phone("+14155551212"))
    for s in ["(415) 555-1212", "415-555-1212", "+1 415-555-1212", "1-415-555-1212",
              "+14155551212", "4155551212", "+1 (415) 555-1212", "010-1-415-555-1212"]:
        assert s in variants


@pytest.mark.parametrize("raw", ["anonymous", "", None, "' OR Id != '", "5" * 5000])
def test_non_valid_numbers_have_no_variants(raw):
    number = parse_phone(raw)
    assert stored_variants(number) == [] and stored_variants(number, exhaustive=True) == []
    assert not stored_matches("03-1234-5678", number)


def test_stored_matches_rejects_other_numbers_and_junk():
    number = parse_phone(TOKYO)
    for stored in ["03-1234-5679", "06-1234-5678", None, "", "anonymous", "03-1234-5678' OR '",
                   "+1 312-345-678", 312345679]:
        assert not stored_matches(stored, number)
    assert not stored_matches("03-1234-5678", "+81312345678")


def test_stored_matches_ignores_extensions():
    assert stored_matches("03-1234-5678 内線 12", parse_phone(TOKYO))


def test_stored_matches_reads_foreign_national_formats():
    assert stored_matches("(415) 555-1212", parse_phone("+14155551212"))
    assert stored_matches("415-555-1212", parse_phone("+14155551212"))


# ---- digits_key -----------------------------------------------------------------------------


@pytest.mark.parametrize("value,key", [
    ("03-1234-5678", "312345678"), ("+81 3-1234-5678", "312345678"), ("０３１２３４５６７８", "312345678"),
    ("090-1234-5678", "9012345678"), ("+1 415-555-1212", "4155551212"), ("anonymous", ""), ("", ""),
    (None, ""), ("12-34", "1234"), ("5" * 5000, "5" * 17), ("03-1234-5678 内線 9", "312345678"),
])
def test_digits_key(value, key):
    assert digits_key(value) == key


def test_digits_key_accepts_a_parsed_number():
    assert digits_key(parse_phone("03-1234-5678")) == "312345678"


# ---- property style: many generated numbers -------------------------------------------------

JP_PREFIXES = ["03", "06", "090", "080", "070", "050", "0120", "045", "052", "092", "011", "0422"]


def _random_jp(rng):
    prefix = rng.choice(JP_PREFIXES)
    length = 11 if prefix in ("090", "080", "070", "050") else 10
    return prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))


def test_generated_numbers_round_trip_through_every_variant():
    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        number = parse_phone(_random_jp(rng))
        if number.kind is not NumberKind.VALID:
            continue
        checked += 1
        variants = stored_variants(number, exhaustive=True)
        assert len(variants) <= EXHAUSTIVE_LIMIT
        for variant in variants:
            reparsed = parse_phone(variant)
            assert reparsed.e164 == number.e164, variant
        assert parse_phone(number.e164).display == number.display
    assert checked > 200


def test_generated_numbers_parse_identically_in_every_width():
    rng = random.Random(11)
    for _ in range(300):
        digits = _random_jp(rng)
        number = parse_phone(digits)
        wide = digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        assert parse_phone(wide).e164 == number.e164
        assert parse_phone("+81" + digits[1:]).e164 == number.e164 or number.kind is not NumberKind.VALID


# ---- what people really type in a phone field -----------------------------------------------

MOBILE = "+819012345678"
LONDON = "+442079460958"

# (stored or delivered text, e164, extension); the table in docs/phone-numbers.md names each form
TYPED_FORMS = [
    # every dash
    ("03\u20101234\u20105678", TOKYO, None), ("03\u20111234\u20115678", TOKYO, None),
    ("03\u20121234\u20125678", TOKYO, None), ("03\u20131234\u20135678", TOKYO, None),
    ("03\u20141234\u20145678", TOKYO, None), ("03\u20151234\u20155678", TOKYO, None),
    ("03\u22121234\u22125678", TOKYO, None), ("03\u30fc1234\u30fc5678", TOKYO, None),
    ("03\uff701234\uff705678", TOKYO, None), ("03\uff0d1234\uff0d5678", TOKYO, None),
    ("03\ufe631234\ufe635678", TOKYO, None), ("03\u02d71234\u02d75678", TOKYO, None),
    # every bracket
    ("(03)1234-5678", TOKYO, None), ("（03）1234-5678", TOKYO, None), ("03（1234）5678", TOKYO, None),
    ("［03］1234-5678", TOKYO, None), ("[03] 1234-5678", TOKYO, None), ("【03】1234-5678", TOKYO, None),
    ("〔03〕1234-5678", TOKYO, None), ("（０３）１２３４－５６７８", TOKYO, None),
    # every plus
    ("＋81 3-1234-5678", TOKYO, None), ("﹢81 3-1234-5678", TOKYO, None),
    ("⁺81312345678", TOKYO, None),
    # every space
    ("03\u30001234\u30005678", TOKYO, None), ("03\u00a01234\u00a05678", TOKYO, None),
    ("03\u20091234\u20095678", TOKYO, None), ("03\u202f1234\u202f5678", TOKYO, None),
    ("03\u200a1234\u200a5678", TOKYO, None), ("+81\u00a03\u00a01234\u00a05678", TOKYO, None),
    # full-width digits
    ("０９０－１２３４－５６７８", MOBILE, None), ("０９０１２３４５６７８", MOBILE, None),
    # labels and notes around the number
    ("TEL 03-1234-5678", TOKYO, None), ("Tel. 03-1234-5678", TOKYO, None),
    ("TEL:03-1234-5678", TOKYO, None), ("ＴＥＬ：０３－１２３４－５６７８", TOKYO, None),
    ("℡03-1234-5678", TOKYO, None), ("☎03-1234-5678", TOKYO, None), ("☎ 03-1234-5678", TOKYO, None),
    ("📞 03-1234-5678", TOKYO, None), ("電話 03-1234-5678", TOKYO, None),
    ("電話番号：03-1234-5678", TOKYO, None), ("代表：03-1234-5678", TOKYO, None),
    ("03-1234-5678（代表）", TOKYO, None), ("03-1234-5678 (代表)", TOKYO, None),
    ("03-1234-5678(直通)", TOKYO, None), ("（直通）03-1234-5678", TOKYO, None),
    ("携帯 090-1234-5678", MOBILE, None), ("携帯：090-1234-5678", MOBILE, None),
    ("【携帯】090-1234-5678", MOBILE, None), ("090-1234-5678（携帯）", MOBILE, None),
    ("Mobile: +81 90-1234-5678", MOBILE, None), ("Phone: 03-1234-5678", TOKYO, None),
    ("TEL/FAX 03-1234-5678", TOKYO, None), ("Office 03-1234-5678", TOKYO, None),
    ("自宅 03-1234-5678", TOKYO, None), ("TEL 03-1234-5678（代表）", TOKYO, None),
    # extensions
    ("03-1234-5678 内線 123", TOKYO, "123"), ("03-1234-5678（内線123）", TOKYO, "123"),
    ("03-1234-5678 (内線:45)", TOKYO, "45"), ("03-1234-5678 内123", TOKYO, "123"),
    ("03-1234-5678 ext.45", TOKYO, "45"), ("03-1234-5678 ext 45", TOKYO, "45"),
    ("03-1234-5678 x 123", TOKYO, "123"), ("03-1234-5678 extension 9", TOKYO, "9"),
    ("TEL 03-1234-5678（代表）内線 201", TOKYO, "201"), ("03-1234-5678,12", TOKYO, "12"),
    # the national prefix in brackets after the country code
    ("+81-(0)3-1234-5678", TOKYO, None), ("+81 (0)3 1234 5678", TOKYO, None),
    ("+81(0)312345678", TOKYO, None), ("+81 (0)90-1234-5678", MOBILE, None),
    ("+44 (0)20 7946 0958", LONDON, None), ("+44(0)20-7946-0958", LONDON, None),
    # the trunk 0 kept after the country code, and the country code in brackets
    ("+81 03-1234-5678", TOKYO, None), ("+81-90-1234-5678", MOBILE, None),
    ("(+81) 3-1234-5678", TOKYO, None), ("+81(3)1234-5678", TOKYO, None),
    # dots and groupings
    ("03.1234.5678", TOKYO, None), ("090.1234.5678", MOBILE, None),
    ("+81.3.1234.5678", TOKYO, None),
    # international prefixes: 010 (dialled from Japan), 00 (most of the world), bare country code
    ("010-81-3-1234-5678", TOKYO, None), ("0081-3-1234-5678", TOKYO, None),
    ("0081312345678", TOKYO, None), ("00 44 20 7946 0958", LONDON, None),
    ("81312345678", TOKYO, None), ("81-3-1234-5678", TOKYO, None),
    ("81 90 1234 5678", MOBILE, None),
]


@pytest.mark.parametrize("raw,e164,extension", TYPED_FORMS)
def test_typed_forms_are_read(raw, e164, extension):
    number = parse_phone(raw)
    assert (number.kind, number.e164, number.extension) == (V, e164, extension)
    assert index_keys(raw) == [e164]
    assert stored_matches(raw, parse_phone(e164))


def test_japanese_numbers_starting_00_stay_japanese():
    # 0037 and 00777 ranges exist in Japan (phonenumbers' JP metadata): not read as "+37", "+777"
    assert parse_phone("0037-123-456").e164 == "+810037123456"


# (field value, every number it holds)
SEVERAL = [
    ("03-1234-5678 / 090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678／090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678・090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678、090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678, 090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678; +44 20 7946 0958", [TOKYO, LONDON]),
    ("TEL 03-1234-5678 / 携帯 090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678 内線 12 / 090-1234-5678", [TOKYO, MOBILE]),
    ("03-1234-5678（代表）/ 03-1234-5678（直通）", [TOKYO]),
]


@pytest.mark.parametrize("raw,keys", SEVERAL)
def test_a_field_holding_several_numbers_indexes_each(raw, keys):
    assert index_keys(raw) == keys
    assert all(stored_matches(raw, parse_phone(key)) for key in keys)
    # one caller ID is one number: the same text delivered by a phone system is not a number
    assert parse_phone(raw).kind is I


@pytest.mark.parametrize("raw", [
    None, "", "   ", "anonymous", "非通知", "TEL", "携帯", "（代表）", "03-1234-5678 / hello",
    "hotel 03-1234-5678", "call 03-1234-5678", "03-1234-5678 OR 1=1", "03-1234-5678; DROP TABLE x",
    "03-1234-5678' OR Id != '", "<b>03-1234-5678</b>", "{03-1234-5678}", "03-1234\x00-5678",
    "03-1234-5678\x1b[31m", "\u202e03-1234-5678", "03-1234-5678 / 03-1234-567",
    " / ".join(["03-1234-5678"] * 5), "9" * 5000, "TEL " * 2000, "03-1234-5678 / " * 500,
])
def test_index_keys_of_no_number_or_hostile_text_is_empty(raw):
    assert index_keys(raw) == []


def test_index_keys_reads_foreign_national_formats_in_their_region():
    assert index_keys("(415) 555-1212", "US") == ["+14155551212"]
    assert index_keys("(415) 555-1212") == []


def test_huge_hostile_field_values_are_cheap():
    started = time.perf_counter()
    for i in range(200):
        index_keys(f"TEL {i} / " * 1000)
        index_keys("（" * 5000 + "03-1234-5678")
        parse_phone("☎" * 5000)
    assert time.perf_counter() - started < 0.5


class HostileStr(str):
    """A str whose every method a parser might call raises."""

    def _boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    __str__ = __len__ = __getitem__ = __iter__ = __hash__ = __eq__ = _boom
    strip = translate = encode = lower = split = replace = startswith = _boom


class HostileBytes(bytes):
    def _boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    __getitem__ = __len__ = decode = __bytes__ = _boom


def test_str_subclass_whose_methods_raise_is_read_as_its_value():
    number = parse_phone(HostileStr("03-1234-5678"))
    assert (number.kind, number.e164, type(number.raw)) == (V, TOKYO, str)
    assert index_keys(HostileStr("03-1234-5678 / 090-1234-5678")) == [TOKYO, MOBILE]
    assert stored_matches(HostileStr("03-1234-5678"), parse_phone(TOKYO))


def test_bytes_subclass_whose_methods_raise_is_read_as_its_value():
    assert parse_phone(HostileBytes(b"03-1234-5678")).e164 == TOKYO


def test_object_whose_str_returns_a_hostile_str_is_read_as_its_value():
    class Wrapper:
        def __str__(self):
            return HostileStr("03-1234-5678")

    assert parse_phone(Wrapper()).e164 == TOKYO


class RaisingObject:
    def __str__(self):
        raise RuntimeError("boom")


@pytest.mark.parametrize("region", [HostileStr("JP"), RaisingObject(), ["JP"], b"\xff", "\ud800",
                                    None],
                         ids=["str subclass", "str() raises", "list", "bytes", "surrogate", "None"])
def test_a_hostile_default_region_is_read_as_its_value_or_japan(region):
    """parse_phone promises never to raise, whatever its arguments (issue 13)."""
    assert parse_phone("03-1234-5678", region).e164 == TOKYO
    assert parse_phone(HostileStr("03-1234-5678"), region).e164 == TOKYO
    assert parse_phone(RaisingObject(), region).kind is I
    assert index_keys("03-1234-5678", region) == [TOKYO]


def test_a_hostile_str_subclass_region_counts_as_its_value():
    assert parse_phone("(415) 555-1212", HostileStr("US")).e164 == "+14155551212"
