"""A realistic Japanese org for the demo, tests and benchmarks, reproducible from a seed.

Phone numbers are stored the way people really type them into Salesforce: hyphenated, bare,
+81 with and without spaces, bracketed, full-width, now and then hyphenated in the wrong place,
and in about one value in ten an odd form: other dashes, brackets and spaces, labels and notes
("TEL", "（代表）", "携帯"), extensions, international prefixes, two numbers in one field. The
generator records the numbers it wrote into each value (`phone_truth` on the org), the ground
truth tests and benchmarks compare against: it never reads a value back with a parser, and the
emulator package never imports core/.
The same number appears on several records on purpose (contacts sharing a company line, a lead
and a contact for one person, converted leads), and some timestamps tie exactly, so the
resolver's priority, recency and tie-break rules all have something to bite on.
"""
import itertools
import json
import random
import typing
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

# How people type a Japanese number (weights), given its groups g = ("03", "1234", "5678") and
# the generator's random source r. The common forms come first; the odd ones below (about one
# value in ten) are what people also type: other dashes, brackets and spaces, labels and notes,
# extensions, international prefixes. Each style must keep the number in the text: the generator
# records the number it encoded, which is the ground truth tests and benchmarks compare against.
def _rest(g):
    return "-".join(g[1:])


COMMON_JP_STYLES = (
    (40, lambda g, r: "-".join(g)),
    (14, lambda g, r: "".join(g)),
    (6, lambda g, r: f"+81 {g[0][1:]}-{_rest(g)}"),
    (5, lambda g, r: "+81" + "".join(g)[1:]),
    (3, lambda g, r: f"+81-{g[0][1:]}-{_rest(g)}"),
    (2, lambda g, r: f"+81 {g[0][1:]} {' '.join(g[1:])}"),
    (1, lambda g, r: f"+81 (0){g[0][1:]}-{_rest(g)}"),
    (4, lambda g, r: f"({g[0]}) {_rest(g)}"),
    (2, lambda g, r: f"({g[0]}){_rest(g)}"),
    (3, lambda g, r: f"{g[0]}({g[1]}){g[2]}"),
    (3, lambda g, r: " ".join(g)),
    (1, lambda g, r: ".".join(g)),
    (5, lambda g, r: "－".join(g).translate(FULL_WIDTH)),
    (2, lambda g, r: "-".join(g).translate(FULL_WIDTH)),
    (1, lambda g, r: "ー".join(g).translate(FULL_WIDTH)),
    (1, lambda g, r: "".join(g).translate(FULL_WIDTH)),
    (2, lambda g, r: f"{g[0]}-{''.join(g[1:])}"),
)
# Dashes, brackets, pluses and spaces beyond the common ones: what IMEs, word processors and web
# pages put between the digits.
ODD_DASHES = "‐‑‒–—―−ーｰ﹣"
ODD_BRACKETS = ("（）", "［］", "【】", "〔〕", "[]")
ODD_PLUSES = "＋﹢"
ODD_SPACES = "\u3000\u00a0\u2009\u202f"
LABELS = ("TEL {}", "Tel. {}", "TEL:{}", "ＴＥＬ {}", "電話：{}", "電話番号 {}", "☎{}", "☎ {}", "℡{}",
          "{}（代表）", "{}(代表)", "代表 {}", "{}（直通）", "直通：{}", "Phone: {}", "自宅 {}")
MOBILE_LABELS = ("携帯 {}", "携帯：{}", "【携帯】{}", "{}（携帯）", "Mobile: {}")
EXTENSIONS = ("{} 内線 {}", "{} 内線{}", "{}（内線{}）", "{} ext. {}", "{} x{}", "{} EXT {}")
ODD_JP_STYLES = (
    (1, lambda g, r: f"+81-(0){g[0][1:]}-{_rest(g)}"),
    (1, lambda g, r: f"+81 {'-'.join(g)}"),
    (1, lambda g, r: f"0081-{g[0][1:]}-{_rest(g)}"),
    (1, lambda g, r: "81" + "".join(g)[1:]),
    (1, lambda g, r: f"010-81-{g[0][1:]}-{_rest(g)}"),
    (2, lambda g, r: r.choice(ODD_DASHES).join(g)),
    (1, lambda g, r: "{1}{0}{2}{3}".format(g[0], *r.choice(ODD_BRACKETS), _rest(g))),
    (1, lambda g, r: f"{g[0]}（{g[1]}）{g[2]}" if len(g) == 3 else "-".join(g)),
    (1, lambda g, r: r.choice(ODD_SPACES).join(g)),
    (1, lambda g, r: f"{r.choice(ODD_PLUSES)}81 {g[0][1:]}-{_rest(g)}"),
    (3, lambda g, r: r.choice(MOBILE_LABELS if g[0] in MOBILE_PREFIXES else LABELS)
     .format("-".join(g))),
    (2, lambda g, r: r.choice(EXTENSIONS).format("-".join(g), r.randint(1, 999))),
)
MISPLACED_HYPHENS_WEIGHT = 4
TWO_NUMBERS_WEIGHT = 1
TWO_NUMBER_SEPARATORS = (" / ", "／", "・", "、", ", ")
FOREIGN_STYLES = (
    (5, lambda cc, g, r: f"+{cc} {g[0]}-{_rest(g)}" if cc == "1" else f"+{cc} {' '.join(g)}"),
    (3, lambda cc, g, r: f"+{cc}{''.join(g)}"),
    (2, lambda cc, g, r: f"+{cc}-{'-'.join(g)}"),
    (1, lambda cc, g, r: f"010-{cc}-{'-'.join(g)}"),
    # odd: the 00 international prefix, a full-width plus, a label
    (1, lambda cc, g, r: f"00{cc} {' '.join(g)}"),
    (1, lambda cc, g, r: f"＋{cc} {' '.join(g)}"),
    (1, lambda cc, g, r: f"TEL +{cc} {' '.join(g)}"),
)


class Number(typing.NamedTuple):
    """A generated phone number: what it is (E.164) and the digit groups it is written in."""

    e164: str
    groups: tuple
    cc: str


class _Numbers:
    """Hands out distinct phone numbers as (e164, groups, country code) and renders them as typed."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()
        # None: hyphens in the wrong place; "two": a second number in the same field
        jp = COMMON_JP_STYLES + ODD_JP_STYLES + ((MISPLACED_HYPHENS_WEIGHT, None),
                                                 (TWO_NUMBERS_WEIGHT, "two"))
        self._jp_styles = [style for _, style in jp]
        self._jp_weights = list(itertools.accumulate(w for w, _ in jp))
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
        return Number("+81" + "".join(groups)[1:], tuple(groups), "81")

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
            return Number(f"+{cc}{''.join(groups)}", groups, cc)
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
        """(text, numbers): `number` written the way some person typed it, and every number the
        text holds (two when the person put a second number in the same field)."""
        if number.cc != "81":
            style = self.rng.choices(FOREIGN_STYLES, cum_weights=self._foreign_weights)[0][1]
            return style(number.cc, number.groups, self.rng), (number,)
        style = self.rng.choices(self._jp_styles, cum_weights=self._jp_weights)[0]
        if style is None:
            return self._misplaced_hyphens(number.groups), (number,)
        if style == "two":
            other = self.fixed() if number.groups[0] in MOBILE_PREFIXES else self.mobile()
            separator = self.rng.choice(TWO_NUMBER_SEPARATORS)
            return "-".join(number.groups) + separator + "-".join(other.groups), (number, other)
        return style(number.groups, self.rng), (number,)

    def _misplaced_hyphens(self, groups):
        digits = "".join(groups)
        cuts = sorted(self.rng.sample(range(2, len(digits) - 1), 2))
        odd = f"{digits[:cuts[0]]}-{digits[cuts[0]:cuts[1]]}-{digits[cuts[1]:]}"
        return odd if odd != "-".join(groups) else digits


def every_form(number):
    """Each way the generator may write `number` (common and odd styles, one pick of each)."""
    rng = random.Random(0)
    if number.cc != "81":
        forms = [style(number.cc, number.groups, rng) for _, style in FOREIGN_STYLES]
    else:
        forms = [style(number.groups, rng) for _, style in COMMON_JP_STYLES + ODD_JP_STYLES]
    return list(dict.fromkeys(forms))


def _area_of(number):
    if number is None or number.cc != "81" or number.groups[0] in ("0120", "0570", "0800", "050"):
        return None
    return number.groups[0]


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
        self.truth = {}              # (record Id, field) -> the Numbers written into the value

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

    def base(self, obj, **fields):
        """A new record; phone fields given as a Number are written as some person typed them,
        and the numbers written are kept in `truth`."""
        record = {"Id": self.new_id(obj), "LastModifiedDate": self.stamp()}
        for field, value in fields.items():
            if isinstance(value, Number):
                value, numbers = self.numbers.typed(value)
                self.truth[(record["Id"], field)] = numbers
            record[field] = value
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
    """A reproducible org of about `size` Account, Contact and Lead records (plus the admin, the
    login user, and the DEMO_USERS).

    The org carries `phone_truth`: {(record Id, field): (Number, ...)}, the numbers the generator
    wrote into each phone value, kept beside the records and never served by the emulator.
    """
    from emulator.org import Org
    records, truth = generate_records_and_truth(size, seed, person_accounts)
    org = Org(records, person_accounts=person_accounts, name=name)
    org.phone_truth = _with_person_contacts(org, truth)
    return org


# The org adds a hidden Contact behind each person account, holding the account's phone values.
PERSON_CONTACT_FIELDS = {"Phone": "Phone", "PersonMobilePhone": "MobilePhone"}


def _with_person_contacts(org, truth):
    for account in org.records["Account"]:
        contact_id = account.get("PersonContactId")
        if not account.get("IsPersonAccount") or not contact_id:
            continue
        for account_field, contact_field in PERSON_CONTACT_FIELDS.items():
            if (account["Id"], account_field) in truth:
                truth[(contact_id, contact_field)] = truth[(account["Id"], account_field)]
    return truth


def generate_records(size=1000, seed=1, person_accounts=True):
    """The record lists `generate_org` loads: {"User": [...], "Account": [...], ...}."""
    return generate_records_and_truth(size, seed, person_accounts)[0]


def generate_records_and_truth(size=1000, seed=1, person_accounts=True):
    """(records, truth): the record lists, and {(record Id, field): (Number, ...)} they hold."""
    builder = _Builder(seed, person_accounts)
    _add_user(builder)
    size = max(int(size), 3)
    accounts = _add_business_accounts(builder, max(1, size * 15 // 100))
    if person_accounts:
        _add_person_accounts(builder, max(1, size * 5 // 100))
    contacts = _add_contacts(builder, accounts, max(1, size * 45 // 100))
    _add_leads(builder, contacts, size - len(builder.records["Account"]) - len(contacts))
    return builder.records, builder.truth


# The org's sales users besides the admin (the login user): (LastName, FirstName, romanised
# surname, active). Fixed rather than drawn, so adding them leaves every other record of a seed as
# it was; the last one has left the company (an inactive user cannot own new records).
DEMO_USERS = (("山田", "花子", "yamada", True), ("佐藤", "健一", "sato", True),
              ("鈴木", "美咲", "suzuki", True), ("高橋", "翔太", "takahashi", True),
              ("山本", "陽子", "yamamoto", True), ("中村", "誠", "nakamura", True),
              ("田中", "一郎", "tanaka", False))
USER_DOMAIN = "demo.sfcti.example"


def _add_user(b):
    b.base("User", Username=f"admin@{USER_DOMAIN}", FirstName="太郎", LastName="管理",
           Name="管理 太郎", Email=f"admin@{USER_DOMAIN}", IsActive=True)
    for last, first, roman, active in DEMO_USERS:
        address = f"{roman}@{USER_DOMAIN}"
        b.records["User"].append({"Id": b.new_id("User"), "Username": address, "Email": address,
                                  "FirstName": first, "LastName": last, "Name": f"{last} {first}",
                                  "Alias": roman[:8], "IsActive": active, "UserType": "Standard",
                                  "LastModifiedDate": EPOCH.strftime("%Y-%m-%dT%H:%M:%S.000+0000")})


def _add_business_accounts(b, count):
    accounts = []
    for _ in range(count):
        line = b.numbers.company_line() if b.rng.random() < 0.95 else None
        fields = {"Name": b.company(), "Phone": line}
        if b.person_accounts:
            fields["IsPersonAccount"] = False
        accounts.append((b.base("Account", **fields), line))
    return accounts


def _add_person_accounts(b, count):
    for _ in range(count):
        last, first = b.person()
        home = b.numbers.fixed() if b.rng.random() < 0.4 else None
        b.base("Account", IsPersonAccount=True, FirstName=first, LastName=last, Name=f"{last} {first}",
               Phone=home, PersonMobilePhone=b.numbers.mobile())


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
                        AccountId=account["Id"], Phone=phone,
                        MobilePhone=mobile)
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
           Phone=phone, MobilePhone=mobile, IsConverted=False,
           ConvertedContactId=None, ConvertedAccountId=None)


def _add_lead_like_contact(b, contact_row):
    # The same person entered again as a lead (a web form, a trade fair list): same number,
    # typed differently. Contact must still win by priority.
    contact, account, phone, mobile = contact_row
    b.base("Lead", FirstName=contact["FirstName"], LastName=contact["LastName"], Name=contact["Name"],
           Company=account["Name"], Phone=phone or mobile or b.numbers.mobile(),
           MobilePhone=mobile, IsConverted=False, ConvertedContactId=None,
           ConvertedAccountId=None)


def _add_converted_lead(b, contact_row):
    contact, account, phone, mobile = contact_row
    b.base("Lead", FirstName=contact["FirstName"], LastName=contact["LastName"], Name=contact["Name"],
           Company=account["Name"], Phone=phone or mobile or b.numbers.mobile(),
           MobilePhone=mobile, IsConverted=True, ConvertedContactId=contact["Id"],
           ConvertedAccountId=account["Id"])


# ---- files and catalogue --------------------------------------------------------------------


def dump_org(org, path):
    """Write `org` as JSON that `load_org` reads back into an equal org (phone truth included)."""
    data = {"name": org.name, "person_accounts": org.person_accounts,
            "records": {obj: records for obj, records in org.records.items() if records}}
    truth = getattr(org, "phone_truth", None)
    if truth is not None:
        data["phone_truth"] = [[rid, field, [list(n) for n in numbers]]
                               for (rid, field), numbers in truth.items()]
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
    org = Org(data["records"], **kwargs)
    if "phone_truth" in data:
        org.phone_truth = {(rid, field): tuple(Number(e164, tuple(groups), cc)
                                               for e164, groups, cc in numbers)
                           for rid, field, numbers in data["phone_truth"]}
    return org


PHONE_FIELDS = {"Account": ("Phone", "PersonMobilePhone"), "Contact": ("Phone", "MobilePhone"),
                "Lead": ("Phone", "MobilePhone")}


def org_phone_catalogue(org, sample=None, seed=0):
    """(e164, object, record_id, stored) for each number the generator wrote into `org`.

    The E.164 is the number the generator encoded (its recorded truth), not a parse of the
    stored text, so a form no parser reads still counts. A value holding two numbers gives two
    rows. `sample` picks that many phone values at random. Raises ValueError for an org without
    recorded truth (one not made by this generator).
    """
    truth = getattr(org, "phone_truth", None)
    if truth is None:
        raise ValueError("this org has no recorded phone truth: generate it with generate_org")
    stored = [(obj, record["Id"], field, record[field]) for obj, fields in PHONE_FIELDS.items()
              for record in org.records.get(obj, ()) for field in fields if record.get(field)]
    if sample is not None and sample < len(stored):
        stored = random.Random(seed).sample(stored, sample)
    return [(number.e164, obj, rid, value) for obj, rid, field, value in stored
            for number in truth.get((rid, field), ())]
