"""A realistic Japanese org for the demo, tests and benchmarks, reproducible from a seed.

Phone numbers are stored the way people really type them into Salesforce: hyphenated, bare,
+81 with and without spaces, bracketed, full-width, now and then hyphenated in the wrong place.
The same number appears on several records on purpose (contacts sharing a company line, a lead
and a contact for one person, converted leads), and some timestamps tie exactly, so the
resolver's priority, recency and tie-break rules all have something to bite on.
"""
import itertools
import json
import random
from datetime import datetime, timedelta, timezone

# Area codes whose hyphenation (2-4-4, 3-3-4, 4-2-4, 5-1-4) phonenumbers agrees with for every
# subscriber number starting 2-9, so the "hyphenated" stored form is the one on business cards.
FIXED_AREAS = ("03", "03", "03", "06", "06", "045", "048", "052", "075", "078", "092", "044",
               "0422", "0466", "0276", "0299", "0554", "0859", "0436", "0285", "01267")
MOBILE_PREFIXES = ("090", "090", "090", "080", "080", "070")
# Fictional ranges (555-01xx, Ofcom's drama numbers) where the country has them.
FOREIGN = (("1", ("415", "555", "01##")), ("1", ("212", "555", "01##")), ("44", ("20", "7946", "0###")),
           ("82", ("2", "3##", "####")), ("86", ("10", "6###", "####")), ("65", ("63##", "####")))

SURNAMES = ("佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水 "
            "山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 村上 遠藤 青木 坂本 "
            "福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田").split()
GIVEN_NAMES = ("太郎 一郎 健太 翔太 大輔 拓也 直樹 浩 誠 学 隆 健一 和也 達也 亮 蓮 悠真 湊 大翔 陽斗 "
               "花子 裕子 美咲 陽子 恵子 由美 真由美 愛 さくら 結衣 葵 陽菜 智子 京子 明美 彩 舞 優子 千尋 七海").split()
COMPANY_STEMS = ("東京 大和 日本 中央 北斗 朝日 富士 桜 青葉 三星 光 新星 平和 協和 大同 丸山 関東 九州 北海 "
                 "山田 緑 旭 千代田 浪速 相模 武蔵 瀬戸 白鷺 若葉 昭和").split()
INDUSTRIES = ("商事 工業 建設 物産 運輸 電機 製作所 不動産 食品 システム 技研 印刷 興業 産業 薬品 "
              "ホールディングス 通信 設計 商会 精機 化成 物流 電子 ソリューションズ").split()
COMPANY_PATTERNS = ("株式会社{}", "株式会社{}", "株式会社{}", "{}株式会社", "{}有限会社", "有限会社{}", "合同会社{}")

FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "User": "005"}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EPOCH = datetime(2023, 6, 1, tzinfo=timezone.utc)
TWO_YEARS = 2 * 365 * 24 * 3600

# How people type a Japanese number (weights), given its groups g = ("03", "1234", "5678").
JP_STYLES = (
    (40, lambda g: "-".join(g)),
    (14, lambda g: "".join(g)),
    (6, lambda g: f"+81 {g[0][1:]}-{'-'.join(g[1:])}"),
    (5, lambda g: "+81" + "".join(g)[1:]),
    (3, lambda g: f"+81-{g[0][1:]}-{'-'.join(g[1:])}"),
    (2, lambda g: f"+81 {g[0][1:]} {' '.join(g[1:])}"),
    (1, lambda g: f"+81 (0){g[0][1:]}-{'-'.join(g[1:])}"),
    (4, lambda g: f"({g[0]}) {'-'.join(g[1:])}"),
    (2, lambda g: f"({g[0]}){'-'.join(g[1:])}"),
    (3, lambda g: f"{g[0]}({g[1]}){g[2]}"),
    (3, lambda g: " ".join(g)),
    (1, lambda g: ".".join(g)),
    (5, lambda g: "－".join(g).translate(FULL_WIDTH)),
    (2, lambda g: "-".join(g).translate(FULL_WIDTH)),
    (1, lambda g: "ー".join(g).translate(FULL_WIDTH)),
    (1, lambda g: "".join(g).translate(FULL_WIDTH)),
    (2, lambda g: f"{g[0]}-{''.join(g[1:])}"),
    (4, None),                                   # hyphens in the wrong place
)
FOREIGN_STYLES = (
    (5, lambda cc, g: f"+{cc} {g[0]}-{'-'.join(g[1:])}" if cc == "1" else f"+{cc} {' '.join(g)}"),
    (3, lambda cc, g: f"+{cc}{''.join(g)}"),
    (2, lambda cc, g: f"+{cc}-{'-'.join(g)}"),
    (1, lambda cc, g: f"010-{cc}-{'-'.join(g)}"),
)


class _Numbers:
    """Hands out distinct phone numbers as (e164, groups, country code) and renders them as typed."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()
        self._jp_weights = list(itertools.accumulate(w for w, _ in JP_STYLES))
        self._foreign_weights = list(itertools.accumulate(w for w, _ in FOREIGN_STYLES))

    def _fresh(self, make):
        while True:
            number = make()
            if number[0] not in self.used:
                self.used.add(number[0])
                return number

    def _digits(self, count):
        rest = count - 1
        return f"{self.rng.randint(2, 9)}{self.rng.randrange(10 ** rest):0{rest}d}"

    def _jp(self, prefix, sizes):
        local = self._digits(sum(sizes))
        groups, at = [prefix], 0
        for size in sizes:
            groups.append(local[at:at + size])
            at += size
        return "+81" + "".join(groups)[1:], tuple(groups), "81"

    def fixed(self, area=None):
        area = area or self.rng.choice(FIXED_AREAS)
        return self._fresh(lambda: self._jp(area, (6 - len(area), 4)) if len(area) < 5
                           else self._jp(area, (1, 4)))

    def mobile(self):
        return self._fresh(lambda: self._jp(self.rng.choice(MOBILE_PREFIXES), (4, 4)))

    def toll_free(self):
        prefix = self.rng.choice(("0120", "0120", "0120", "0570", "0800"))
        return self._fresh(lambda: self._jp(prefix, (3, 4) if prefix == "0800" else (3, 3)))

    def ip_phone(self):
        return self._fresh(lambda: self._jp("050", (4, 4)))

    def foreign(self):
        def make():
            cc, pattern = self.rng.choice(FOREIGN)
            groups = tuple("".join(self.rng.choice("0123456789") if ch == "#" else ch for ch in part)
                           for part in pattern)
            return f"+{cc}{''.join(groups)}", groups, cc
        return self._fresh(make)

    def company_line(self):
        roll = self.rng.random()
        if roll < 0.80:
            return self.fixed()
        if roll < 0.90:
            return self.toll_free()
        if roll < 0.96:
            return self.ip_phone()
        return self.foreign()

    def direct_line(self, near=None):
        roll = self.rng.random()
        if roll < 0.75:
            return self.fixed(_area_of(near))
        if roll < 0.93:
            return self.ip_phone()
        return self.mobile()

    def typed(self, number):
        """`number` written the way some person typed it."""
        _, groups, cc = number
        if cc != "81":
            style = self.rng.choices(FOREIGN_STYLES, cum_weights=self._foreign_weights)[0][1]
            return style(cc, groups)
        style = self.rng.choices(JP_STYLES, cum_weights=self._jp_weights)[0][1]
        return style(groups) if style else self._misplaced_hyphens(groups)

    def _misplaced_hyphens(self, groups):
        digits = "".join(groups)
        cuts = sorted(self.rng.sample(range(2, len(digits) - 1), 2))
        odd = f"{digits[:cuts[0]]}-{digits[cuts[0]:cuts[1]]}-{digits[cuts[1]:]}"
        return odd if odd != "-".join(groups) else digits


def _area_of(number):
    if number is None or number[2] != "81" or number[1][0] in ("0120", "0570", "0800", "050"):
        return None
    return number[1][0]


# ---- records --------------------------------------------------------------------------------


class _Builder:
    """Builds the record lists of one org; every random choice comes from one seeded generator."""

    def __init__(self, seed, person_accounts):
        self.rng = random.Random(seed)
        self.numbers = _Numbers(self.rng)
        self.person_accounts = person_accounts
        self.id_base = (seed * 7_919_000_003) % (62 ** 8)
        self.counters = dict.fromkeys(KEY_PREFIXES, 0)
        self.stamps = []
        self.records = {"User": [], "Account": [], "Contact": [], "Lead": []}

    def new_id(self, obj):
        self.counters[obj] += 1
        return record_id(KEY_PREFIXES[obj], self.id_base + self.counters[obj])

    def stamp(self):
        # Now and then an exact tie with an earlier record, as bulk imports and flows produce.
        if self.stamps and self.rng.random() < 0.06:
            return self.rng.choice(self.stamps[-50:])
        moment = EPOCH + timedelta(seconds=self.rng.randrange(TWO_YEARS))
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        self.stamps.append(text)
        if len(self.stamps) > 1000:
            del self.stamps[:500]
        return text

    def person(self):
        return self.rng.choice(SURNAMES), self.rng.choice(GIVEN_NAMES)

    def company(self):
        stem = self.rng.choice(COMPANY_STEMS) + self.rng.choice(INDUSTRIES)
        return self.rng.choice(COMPANY_PATTERNS).format(stem)

    def maybe_typed(self, number):
        return self.numbers.typed(number) if number else None

    def base(self, obj, **fields):
        record = {"Id": self.new_id(obj), "LastModifiedDate": self.stamp()}
        record.update(fields)
        self.records[obj].append(record)
        return record


def record_id(prefix, number):
    """An 18-character Salesforce Id with `prefix`, unique per `number`."""
    body = ""
    for _ in range(10):
        number, digit = divmod(number, 62)
        body = BASE62[digit] + body
    id15 = f"{prefix}5J{body}"
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def generate_org(size=1000, seed=1, person_accounts=True, name="株式会社デモ組織"):
    """A reproducible org of about `size` Account, Contact and Lead records (plus one User)."""
    from emulator.org import Org
    return Org(generate_records(size, seed, person_accounts), person_accounts=person_accounts, name=name)


def generate_records(size=1000, seed=1, person_accounts=True):
    """The record lists `generate_org` loads: {"User": [...], "Account": [...], ...}."""
    builder = _Builder(seed, person_accounts)
    _add_user(builder)
    size = max(int(size), 3)
    accounts = _add_business_accounts(builder, max(1, size * 15 // 100))
    if person_accounts:
        _add_person_accounts(builder, max(1, size * 5 // 100))
    contacts = _add_contacts(builder, accounts, max(1, size * 45 // 100))
    _add_leads(builder, contacts, size - len(builder.records["Account"]) - len(contacts))
    return builder.records


def _add_user(b):
    b.base("User", Username="admin@demo.sfcti.example", FirstName="太郎", LastName="管理",
           Name="管理 太郎", Email="admin@demo.sfcti.example", IsActive=True)


def _add_business_accounts(b, count):
    accounts = []
    for _ in range(count):
        line = b.numbers.company_line() if b.rng.random() < 0.95 else None
        fields = {"Name": b.company(), "Phone": b.maybe_typed(line)}
        if b.person_accounts:
            fields["IsPersonAccount"] = False
        accounts.append((b.base("Account", **fields), line))
    return accounts


def _add_person_accounts(b, count):
    for _ in range(count):
        last, first = b.person()
        home = b.numbers.fixed() if b.rng.random() < 0.4 else None
        b.base("Account", IsPersonAccount=True, FirstName=first, LastName=last, Name=f"{last} {first}",
               Phone=b.maybe_typed(home), PersonMobilePhone=b.maybe_typed(b.numbers.mobile()))


def _add_contacts(b, accounts, count):
    contacts = []
    # A few companies get many contacts: real orgs have big customers.
    weights = [b.rng.paretovariate(1.2) for _ in accounts]
    for account, line in b.rng.choices(accounts, weights, k=count):
        last, first = b.person()
        roll = b.rng.random()
        phone = line if roll < 0.35 else None if roll < 0.5 else b.numbers.direct_line(line)
        mobile = b.numbers.mobile() if b.rng.random() < 0.6 else None
        record = b.base("Contact", FirstName=first, LastName=last, Name=f"{last} {first}",
                        AccountId=account["Id"], Phone=b.maybe_typed(phone),
                        MobilePhone=b.maybe_typed(mobile))
        contacts.append((record, account, phone, mobile))
    return contacts


def _add_leads(b, contacts, count):
    for _ in range(max(0, count)):
        roll = b.rng.random()
        if roll < 0.10 and contacts:
            _add_converted_lead(b, b.rng.choice(contacts))
        elif roll < 0.20 and contacts:
            _add_lead_like_contact(b, b.rng.choice(contacts))
        else:
            _add_new_lead(b)


def _add_new_lead(b):
    last, first = b.person()
    phone = b.numbers.company_line() if b.rng.random() < 0.6 else b.numbers.mobile()
    mobile = b.numbers.mobile() if b.rng.random() < 0.3 else None
    b.base("Lead", FirstName=first, LastName=last, Name=f"{last} {first}", Company=b.company(),
           Phone=b.maybe_typed(phone), MobilePhone=b.maybe_typed(mobile), IsConverted=False,
           ConvertedContactId=None, ConvertedAccountId=None)


def _add_lead_like_contact(b, contact_row):
    # The same person entered again as a lead (a web form, a trade fair list): same number,
    # typed differently. Contact must still win by priority.
    contact, account, phone, mobile = contact_row
    b.base("Lead", FirstName=contact["FirstName"], LastName=contact["LastName"], Name=contact["Name"],
           Company=account["Name"], Phone=b.maybe_typed(phone or mobile or b.numbers.mobile()),
           MobilePhone=b.maybe_typed(mobile), IsConverted=False, ConvertedContactId=None,
           ConvertedAccountId=None)


def _add_converted_lead(b, contact_row):
    contact, account, phone, mobile = contact_row
    b.base("Lead", FirstName=contact["FirstName"], LastName=contact["LastName"], Name=contact["Name"],
           Company=account["Name"], Phone=b.maybe_typed(phone or mobile or b.numbers.mobile()),
           MobilePhone=b.maybe_typed(mobile), IsConverted=True, ConvertedContactId=contact["Id"],
           ConvertedAccountId=account["Id"])


# ---- files and catalogue --------------------------------------------------------------------


def dump_org(org, path):
    """Write `org` as JSON that `load_org` reads back into an equal org."""
    data = {"name": org.name, "person_accounts": org.person_accounts,
            "records": {obj: records for obj, records in org.records.items() if records}}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)


def load_org(path):
    """An org from JSON: {"name", "person_accounts", "records": {object: [records]}}, or just the records."""
    from emulator.org import Org
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if "records" not in data:
        data = {"records": data}
    kwargs = {"person_accounts": bool(data.get("person_accounts", False))}
    if data.get("name"):
        kwargs["name"] = data["name"]
    return Org(data["records"], **kwargs)


PHONE_FIELDS = {"Account": ("Phone", "PersonMobilePhone"), "Contact": ("Phone", "MobilePhone"),
                "Lead": ("Phone", "MobilePhone")}


def org_phone_catalogue(org, sample=None, seed=0):
    """(e164, object, record_id, stored) for phone values in `org`; `sample` picks that many at random.

    Parsing every value of a 300,000-record org takes a while, so benchmarks pass `sample`.
    """
    from core.phone import NumberKind, parse_phone
    stored = [(obj, record["Id"], record[field]) for obj, fields in PHONE_FIELDS.items()
              for record in org.records.get(obj, ()) for field in fields if record.get(field)]
    if sample is not None and sample < len(stored):
        stored = random.Random(seed).sample(stored, sample)
    catalogue = []
    for obj, rid, value in stored:
        number = parse_phone(value)
        if number.kind is NumberKind.VALID:
            catalogue.append((number.e164, obj, rid, value))
    return catalogue
