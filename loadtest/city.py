"""Synthetic city: districts, streets, communities, venues, residents and a scan plan.

The reference city is Lanzhou-sized (8 districts, 50 streets, 427 communities,
239,000 venues, 3.85 M residents, ~1.7 M scans a day over ~40 x 20 km around
36.06N 103.83E); ``megacity`` is ten times that, ``small`` is for tests.

Everything is a pure function of ``(spec, seed)``: each part draws from its own
random stream (``random.Random(f"{seed}:<part>")``), so the same seed gives the
same bytes, and one part can be regenerated without the others. Output is
streamed (a few MB in memory whatever the size) with a progress bar on stderr
(:mod:`checkin.platform.progress`: a summary line only when stderr is not a terminal).

Files written by :func:`write_city` into the output directory:

- ``venues.csv``: the venue import format (``checkin venues import``,
  ``POST /v1/venues/import``).
- ``residents.ndjson``: the resident import format, one
  ``{"name", "phone", "id_number"}`` object a line; id numbers are 18-character
  PRC-style numbers with a valid ISO 7064 MOD 11-2 check character, unique.
- ``popularity.csv``: ``venue_id,weight``, a Zipf-like share of the day's scans.
- ``regions.csv``: ``code,name`` of every district, street and community (``POST /v1/regions/import``).
- ``scans.csv`` (``scan_days > 0``): the scan plan, ``scanned_at,resident,venue_id``
  where ``resident`` is the 0-based line of ``residents.ndjson``, in time order,
  following a daily curve with morning, lunch and evening peaks.
- ``city.json``: the manifest (spec, seed, hierarchy with names and centres, counts).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from checkin.platform.progress import Progress
from venues.model import CSV_COLUMNS

VENUE_COLUMNS = CSV_COLUMNS
SCAN_COLUMNS = ("scanned_at", "resident", "venue_id")
KM_PER_DEG_LAT = 111.32


class CitySpec(msgspec.Struct, frozen=True, kw_only=True):
    """Size and shape of a synthetic city."""

    name: str
    city_name: str = "兰州市"
    districts: int = 8
    streets: int = 50
    communities: int = 427
    venues: int = 239_000
    residents: int = 3_850_000
    scans_per_day: int = 1_700_000
    center_lat: float = 36.06
    center_lon: float = 103.83
    width_km: float = 40.0
    height_km: float = 20.0
    zipf_s: float = 0.8
    """Exponent of the venue popularity law: weight of rank r is r ** -zipf_s."""
    venue_id_start: int = 1

    def validate(self) -> None:
        if not 1 <= self.districts <= 80:
            raise ValueError("districts must be 1..80")
        if self.streets < self.districts or self.streets > self.districts * 999:
            raise ValueError("streets must be at least the number of districts (and <= 999 a district)")
        if self.communities < self.streets or self.communities > self.streets * 999:
            raise ValueError("communities must be at least the number of streets (and <= 999 a street)")
        if self.venues < 1 or self.venue_id_start < 1 or self.venue_id_start + self.venues - 1 > 2**32 - 1:
            raise ValueError("venue ids must fit 1..2^32-1")
        if not 1 <= self.residents <= 90_000_000:
            raise ValueError("residents must be 1..90,000,000")
        if self.scans_per_day < 0:
            raise ValueError("scans_per_day must be >= 0")


PRESETS: dict[str, CitySpec] = {
    "city": CitySpec(name="city"),
    "megacity": CitySpec(
        name="megacity",
        districts=16,
        streets=500,
        communities=4_270,
        venues=2_390_000,
        residents=38_500_000,
        scans_per_day=17_000_000,
        width_km=126.0,
        height_km=63.0,
    ),
    "small": CitySpec(
        name="small",
        streets=12,
        communities=30,
        venues=500,
        residents=2_000,
        scans_per_day=5_000,
        width_km=10.0,
        height_km=5.0,
    ),
}


# --- reference data -------------------------------------------------------------------------

# (code, name, relative position x, y in [-1, 1] of the city box, share of the population)
LANZHOU_DISTRICTS: tuple[tuple[str, str, float, float, float], ...] = (
    ("620102", "城关区", 0.30, 0.00, 0.34),
    ("620103", "七里河区", -0.05, -0.15, 0.16),
    ("620104", "西固区", -0.45, -0.05, 0.10),
    ("620105", "安宁区", 0.05, 0.35, 0.09),
    ("620111", "红古区", -0.85, 0.10, 0.05),
    ("620121", "永登县", -0.30, 0.80, 0.09),
    ("620122", "皋兰县", 0.35, 0.75, 0.05),
    ("620123", "榆中县", 0.85, -0.45, 0.12),
)
EXTRA_DISTRICT_NAMES = "新城 北塬 南山 东川 西川 河口 金滩 青城 柳泉 雁滩 桃海 银滩 盐场 九州 和平 定远"
NAME_WORDS = (
    "东岗 西站 火车站 张掖路 酒泉路 广武门 伏龙坪 渭源路 白银路 临夏路 雁南 雁北 拱星墩 草场街 "
    "皋兰路 团结新村 嘉峪关路 五泉 铁路东村 铁路西村 靖远路 盐场路 焦家湾 青白石 拱星 "
    "西湖 建兰路 敦煌路 西园 秀川 土门墩 八里窑 龚家湾 彭家坪 魏岭 西柳沟 四季青 陈坪 "
    "先锋路 福利路 西固城 临洮街 新安路 东川 金沟 培黎 西路 刘家堡 沙井驿 十里店 孔家崖 "
    "银滩 安宁堡 窑街 下窑 矿区 华龙 平安 海石湾 城关 柳树 中堡 红城 苦水 树屏 "
    "石洞 忠和 水阜 和平 定远 夏官营 金崖 连搭 来紫堡 青城 甘草 小康营 龙泉 桃园 "
    "南关 北关 东湖 西津 七里河 滨河 黄河 金城 兰山 皋兰山 白塔 中山 庆阳 民主 "
    "南昌 天水 平凉 武都 甘南 金昌 定西 安西 兴隆 阳光 幸福 和谐 康乐 永安 富民"
).split()
ROADS = (
    "东岗西路 东岗东路 庆阳路 张掖路 酒泉路 中山路 南昌路 天水路 平凉路 西津西路 西津东路 建兰路 "
    "安宁西路 安宁东路 北滨河路 南滨河路 雁滩路 焦家湾路 民主东路 民主西路 武都路 金昌路 甘南路 "
    "白银路 静宁路 皋兰路 定西路 临夏路 嘉峪关西路 敦煌路 西固中路 福利路 合水路 广武门街 "
    "雁西路 雁南路 段家滩路 排洪路 靖远路 盐场路"
).split()
VENUE_BRANDS = (
    "金城 黄河 福源 兴隆 鑫泰 永和 安康 德顺 聚福 丰盛 西北 陇上 老街 百合 牡丹 "
    "瑞祥 祥和 宏达 天成 华联 万家 新世纪 盛达 国芳 东方 正宁 陇原 滨河 五泉 白塔"
).split()
VENUE_ITEMS: dict[str, tuple[str, ...]] = {
    "restaurant": tuple(
        "牛肉面馆 手抓羊肉 酿皮店 火锅店 烧烤 饺子馆 川菜馆 清真餐厅 快餐店 面馆 包子铺 甜醅子 砂锅店".split()
    ),
    "supermarket": tuple("超市 便利店 生鲜超市 购物中心 百货".split()),
    "market": tuple("农贸市场 菜市场 批发市场 早市 夜市".split()),
    "transit": tuple("公交枢纽 地铁站 汽车站 火车站候车厅 出租车站".split()),
    "hospital": tuple("医院 社区卫生服务中心 门诊部 诊所 药房".split()),
    "school": tuple("小学 中学 幼儿园 职业学校 培训中心".split()),
    "office": tuple("大厦 写字楼 科技园 办公楼 产业园".split()),
    "hotel": tuple("宾馆 酒店 快捷酒店 招待所 客栈".split()),
    "entertainment": tuple("影城 KTV 网吧 健身房 游泳馆 剧院 台球厅".split()),
    "other": tuple("理发店 洗衣店 五金店 药店 书店 花店 手机店 银行网点 快递站 修车行".split()),
}
# type: (share of venues, capacity range, dwell choices (minutes), (negative-test hours, probability))
VENUE_TYPES: dict[str, tuple[float, tuple[int, int], tuple[int, ...], tuple[int, float]]] = {
    "restaurant": (0.28, (20, 300), (45, 60, 60, 90), (0, 0.0)),
    "supermarket": (0.07, (50, 800), (20, 30, 45), (0, 0.0)),
    "market": (0.03, (100, 2000), (30, 45, 60), (0, 0.0)),
    "transit": (0.02, (200, 5000), (10, 15, 20), (48, 0.1)),
    "hospital": (0.01, (100, 3000), (60, 120, 180), (48, 0.7)),
    "school": (0.02, (200, 3000), (360, 480), (72, 0.3)),
    "office": (0.18, (20, 1500), (240, 480, 540), (0, 0.0)),
    "hotel": (0.03, (30, 800), (480, 720), (0, 0.0)),
    "entertainment": (0.06, (30, 2000), (90, 120, 180), (72, 0.1)),
    "other": (0.30, (10, 200), (15, 20, 30), (0, 0.0)),
}
# Popularity multiplier per type: big, busy places draw more scans for their size.
TYPE_POPULARITY = {
    "restaurant": 1.0,
    "supermarket": 2.5,
    "market": 3.0,
    "transit": 6.0,
    "hospital": 3.0,
    "school": 1.0,
    "office": 0.6,
    "hotel": 0.5,
    "entertainment": 1.2,
    "other": 0.5,
}

SURNAMES = (
    ("王", 72),
    ("李", 71),
    ("张", 66),
    ("刘", 53),
    ("马", 45),
    ("陈", 44),
    ("杨", 38),
    ("赵", 22),
    ("黄", 22),
    ("周", 18),
    ("吴", 17),
    ("徐", 15),
    ("孙", 14),
    ("朱", 12),
    ("胡", 12),
    ("郭", 12),
    ("何", 10),
    ("高", 10),
    ("林", 9),
    ("罗", 9),
    ("郑", 8),
    ("魏", 8),
    ("宋", 7),
    ("谢", 7),
    ("韩", 7),
    ("唐", 7),
    ("冯", 6),
    ("于", 6),
    ("董", 6),
    ("萧", 5),
    ("程", 5),
    ("曹", 5),
    ("袁", 5),
    ("邓", 5),
    ("许", 5),
    ("傅", 4),
    ("沈", 4),
    ("曾", 4),
    ("彭", 4),
    ("吕", 4),
    ("苏", 4),
    ("蒋", 4),
    ("蔡", 4),
    ("贾", 4),
    ("丁", 3),
    ("魏", 3),
    ("薛", 3),
    ("叶", 3),
    ("闫", 3),
    ("余", 3),
    ("潘", 3),
    ("杜", 3),
    ("戴", 3),
    ("夏", 3),
    ("钟", 3),
    ("汪", 3),
    ("田", 3),
    ("任", 3),
    ("姜", 3),
    ("范", 3),
    ("方", 3),
    ("石", 3),
    ("姚", 3),
    ("谭", 2),
    ("廖", 2),
    ("邹", 2),
    ("熊", 2),
    ("金", 2),
    ("陆", 2),
    ("郝", 2),
    ("孔", 2),
    ("白", 2),
    ("崔", 2),
    ("康", 2),
    ("毛", 2),
    ("邱", 2),
    ("秦", 2),
    ("江", 2),
    ("史", 2),
    ("顾", 2),
    ("侯", 2),
    ("邵", 2),
    ("孟", 2),
    ("龙", 2),
    ("万", 2),
    ("段", 2),
    ("雷", 2),
    ("钱", 2),
    ("汤", 2),
    ("尹", 2),
    ("黎", 2),
    ("易", 2),
    ("常", 2),
    ("武", 2),
    ("乔", 2),
    ("贺", 2),
    ("赖", 2),
    ("龚", 2),
    ("文", 2),
    ("拓", 1),
    ("把", 1),
    ("安", 1),
    ("妥", 1),
    ("喇", 1),
)
GIVEN_CHARS = tuple(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英建华文辉玉兰红梅志强海燕晓东"
    "永福德胜国庆建国卫东丹萍宇浩然子涵梓轩一诺欣怡雨桐佳琪俊杰思远博文天佑嘉怡雅静婷"
    "鑫鹏飞龙凤春秋冬雪梅兵斌彬诚成晨琛宏鸿虎辉慧佳健金晶静娟凯坤莉琳玲龙璐曼娜宁琴琪"
    "蓉瑞珊帅婷彤薇伟巍晓欣鑫雪妍艳燕阳瑶怡颖勇雨玉媛悦云泽哲真志忠洲卓梓"
)
# Area codes on id numbers: Lanzhou districts (most), elsewhere in Gansu, other provinces.
OTHER_GANSU_AREAS = ("620402", "620502", "620602", "620702", "620802", "621102", "621202", "622901")
OTHER_PROVINCE_AREAS = ("610102", "640104", "630102", "510104", "410102", "110101", "650102", "320102")
PHONE_PREFIXES = tuple(
    "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 "
    "170 173 176 177 178 180 181 182 183 185 186 187 188 189 191 198 199".split()
)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
BIRTH_START = dt.date(1936, 1, 1)
BIRTH_END = dt.date(2023, 12, 31)


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of an 18-character PRC id number."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def valid_id_number(value: str) -> bool:
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return id_check_char(value[:17]) == value[17]


# --- hierarchy --------------------------------------------------------------------------------


class Community(msgspec.Struct, frozen=True):
    code: str
    name: str
    lat: float
    lon: float
    weight: float
    """Share of the city's venues (and people) living here, sums to 1 over the city."""


class Street(msgspec.Struct, frozen=True):
    code: str
    name: str
    lat: float
    lon: float
    communities: list[Community]


class District(msgspec.Struct, frozen=True):
    code: str
    name: str
    lat: float
    lon: float
    streets: list[Street]


class Manifest(msgspec.Struct, kw_only=True):
    spec: CitySpec
    seed: int
    scan_days: int
    start_date: str
    files: dict[str, str]
    counts: dict[str, int]
    districts: list[District]
    seconds: dict[str, float] = msgspec.field(default_factory=dict)


def _allocate(total: int, weights: list[float], minimum: int = 0) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder)."""
    n = len(weights)
    base = [minimum] * n
    rest = total - minimum * n
    if rest < 0:
        raise ValueError("cannot allocate fewer items than the minimum per part")
    wsum = sum(weights)
    exact = [rest * w / wsum for w in weights]
    parts = [int(x) for x in exact]
    short = rest - sum(parts)
    order = sorted(range(n), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:short]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts, strict=True)]


class City:
    """A synthetic city for ``(spec, seed)``; every generator is deterministic."""

    def __init__(self, spec: CitySpec, seed: int) -> None:
        spec.validate()
        self.spec = spec
        self.seed = seed
        self.districts = self._hierarchy()
        self.communities = [c for d in self.districts for s in d.streets for c in s.communities]

    def rng(self, part: str) -> random.Random:
        return random.Random(f"venue-checkin:{self.seed}:{part}")

    # geometry: x east, y north, in km from the centre
    def _to_latlon(self, x_km: float, y_km: float) -> tuple[float, float]:
        half_w, half_h = self.spec.width_km / 2, self.spec.height_km / 2
        x = min(max(x_km, -half_w), half_w)
        y = min(max(y_km, -half_h), half_h)
        lat = self.spec.center_lat + y / KM_PER_DEG_LAT
        lon = self.spec.center_lon + x / (KM_PER_DEG_LAT * math.cos(math.radians(self.spec.center_lat)))
        return round(lat, 6), round(lon, 6)

    def _to_km(self, lat: float, lon: float) -> tuple[float, float]:
        y = (lat - self.spec.center_lat) * KM_PER_DEG_LAT
        x = (lon - self.spec.center_lon) * KM_PER_DEG_LAT * math.cos(math.radians(self.spec.center_lat))
        return x, y

    def _hierarchy(self) -> list[District]:
        spec = self.spec
        rng = self.rng("hierarchy")
        half_w, half_h = spec.width_km / 2, spec.height_km / 2
        base: list[tuple[str, str, float, float, float]] = []
        for i in range(spec.districts):
            if i < len(LANZHOU_DISTRICTS):
                base.append(LANZHOU_DISTRICTS[i])
            else:
                extra = EXTRA_DISTRICT_NAMES.split()
                name = extra[(i - len(LANZHOU_DISTRICTS)) % len(extra)] + "区"
                code = f"6201{24 + i - len(LANZHOU_DISTRICTS):02d}"
                base.append((code, name, rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9), 0.06))
        shares = [b[4] for b in base]
        street_counts = _allocate(spec.streets, shares, minimum=1)
        # communities follow streets (a street is a street whatever its district)
        street_weights = [rng.uniform(0.6, 1.4) for _ in range(spec.streets)]
        community_counts = _allocate(spec.communities, street_weights, minimum=1)
        words = list(NAME_WORDS)
        rng.shuffle(words)
        district_list: list[District] = []
        street_index = 0
        share_sum = sum(shares)
        for (code, name, rx, ry, share), n_streets in zip(base, street_counts, strict=True):
            dx, dy = rx * half_w * 0.85, ry * half_h * 0.85
            spread = max(1.0, math.sqrt(share / share_sum) * min(half_w, half_h) * 0.9)
            dlat, dlon = self._to_latlon(dx, dy)
            streets: list[Street] = []
            for s in range(n_streets):
                sx, sy = dx + rng.gauss(0, spread), dy + rng.gauss(0, spread * 0.6)
                scode = f"{code}{s + 1:03d}"
                sname = words[street_index % len(words)] + ("街道" if street_index < len(words) else "二街道")
                slat, slon = self._to_latlon(sx, sy)
                n_comm = community_counts[street_index]
                street_index += 1
                comms: list[Community] = []
                for c in range(n_comm):
                    cx, cy = sx + rng.gauss(0, spread * 0.35), sy + rng.gauss(0, spread * 0.25)
                    clat, clon = self._to_latlon(cx, cy)
                    cname = words[(street_index * 7 + c) % len(words)] + ("社区" if c % 3 else "路社区")
                    weight = share / n_streets / n_comm * rng.lognormvariate(0, 0.5)
                    comms.append(Community(f"{scode}{c + 1:03d}", cname, clat, clon, weight))
                streets.append(Street(scode, sname, slat, slon, comms))
            district_list.append(District(code, name, dlat, dlon, streets))
        total_weight = sum(c.weight for d in district_list for s in d.streets for c in s.communities)
        return [
            District(
                d.code,
                d.name,
                d.lat,
                d.lon,
                [
                    Street(
                        s.code,
                        s.name,
                        s.lat,
                        s.lon,
                        [
                            Community(c.code, c.name, c.lat, c.lon, round(c.weight / total_weight, 9))
                            for c in s.communities
                        ],
                    )
                    for s in d.streets
                ],
            )
            for d in district_list
        ]

    # --- venues -----------------------------------------------------------------------------

    def venue_rows(self) -> Iterator[tuple[Any, ...]]:
        """Venue CSV rows (without the header), ids from ``spec.venue_id_start``, by community."""
        spec = self.spec
        rng = self.rng("venues")
        per_community = _allocate(spec.venues, [c.weight for c in self.communities])
        types = list(VENUE_TYPES)
        type_cum = list(_cumulative([VENUE_TYPES[t][0] for t in types]))
        district_of = {s.code: d for d in self.districts for s in d.streets}
        street_spread = max(0.3, min(spec.width_km, spec.height_km) / 40)
        vid = spec.venue_id_start
        for community, count in zip(self.communities, per_community, strict=True):
            street = community.code[:9]
            district = district_of[street]
            cx, cy = self._to_km(community.lat, community.lon)
            for _ in range(count):
                vtype = types[bisect.bisect_right(type_cum, rng.random() * type_cum[-1])]
                _share, (lo, hi), dwells, (test_hours, test_p) = VENUE_TYPES[vtype]
                capacity = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))), -1)) or 10
                dwell = dwells[int(rng.random() * len(dwells))]
                needs_test = str(test_hours) if test_p and rng.random() < test_p else ""
                brand = VENUE_BRANDS[int(rng.random() * len(VENUE_BRANDS))]
                item = VENUE_ITEMS[vtype]
                road = ROADS[int(rng.random() * len(ROADS))]
                name = f"{brand}{item[int(rng.random() * len(item))]}（{road}店）"
                number = 1 + int(rng.random() * 999)
                address = f"{spec.city_name}{district.name}{road}{number}号"
                lat, lon = self._to_latlon(
                    cx + rng.gauss(0, street_spread), cy + rng.gauss(0, street_spread * 0.8)
                )
                yield (
                    vid,
                    name,
                    address,
                    vtype,
                    district.code,
                    street,
                    community.code,
                    f"{lat:.6f}",
                    f"{lon:.6f}",
                    capacity,
                    dwell,
                    needs_test,
                )
                vid += 1

    def popularity(self, venue_types: list[str], capacities: list[int]) -> list[float]:
        """Zipf-like share of scans per venue (same order as the inputs), summing to 1.

        Venues are ranked by a noisy size score (capacity x type factor x lognormal),
        so busy places are big ones; rank r gets ``r ** -zipf_s``.
        """
        rng = self.rng("popularity")
        n = len(venue_types)
        score = [
            capacities[i] * TYPE_POPULARITY.get(venue_types[i], 1.0) * rng.lognormvariate(0, 1.0)
            for i in range(n)
        ]
        order = sorted(range(n), key=lambda i: (-score[i], i))
        weights = [0.0] * n
        s = self.spec.zipf_s
        for rank, i in enumerate(order, start=1):
            weights[i] = rank**-s
        total = sum(weights)
        return [w / total for w in weights]

    # --- residents ----------------------------------------------------------------------------

    def resident_lines(self, chunk: int = 20_000) -> Iterator[tuple[int, str]]:
        """Yield ``(count, text)`` chunks of NDJSON resident lines."""
        spec = self.spec
        rng = self.rng("residents")
        rand = rng.random
        surname_table = _lookup_table(SURNAMES, 4096)
        given = GIVEN_CHARS
        n_given = len(given)
        areas = [d.code for d in self.districts]
        home = _area_shares(areas)
        home_total = sum(sh for _a, sh in home)
        area_table = _lookup_table(
            [(a, 80.0 * sh / home_total) for a, sh in home]
            + [(a, 15.0 / len(OTHER_GANSU_AREAS)) for a in OTHER_GANSU_AREAS]
            + [(a, 5.0 / len(OTHER_PROVINCE_AREAS)) for a in OTHER_PROVINCE_AREAS],
            4096,
        )
        area_index = {a: i for i, a in enumerate(dict.fromkeys(area_table))}
        area_sum = {a: _weighted_digits(a, 0) for a in area_index}
        days = (BIRTH_END - BIRTH_START).days + 1
        day_str: list[str] = []
        day_sum: list[int] = []
        for k in range(days):
            s = (BIRTH_START + dt.timedelta(days=k)).strftime("%Y%m%d")
            day_str.append(s)
            day_sum.append(_weighted_digits(s, 6))
        seq_str = [f"{q:03d}" for q in range(1000)]
        seq_sum = [_weighted_digits(q, 14) for q in seq_str]
        # ages: fewer of the very old, a dip in the late 1970s, slightly fewer children
        age_table = _age_table(days)
        n_age = len(age_table)
        used: dict[int, int] = {}
        n_prefix = len(PHONE_PREFIXES)
        phone_mult, phone_off = 73_939_133, int(rand() * 10**8)
        buf: list[str] = []
        for i in range(spec.residents):
            surname = surname_table[int(rand() * 4096)]
            if rand() < 0.7:
                name = surname + given[int(rand() * n_given)] + given[int(rand() * n_given)]
            else:
                name = surname + given[int(rand() * n_given)]
            suffix = (i * phone_mult + phone_off) % 100_000_000
            phone = f"{PHONE_PREFIXES[int(rand() * n_prefix)]}{suffix:08d}"
            area = area_table[int(rand() * 4096)]
            day = age_table[int(rand() * n_age)]
            male = 1 if rand() < 0.51 else 0
            ai = area_index[area]
            while True:
                bucket = ((ai * days) + day) * 2 + male
                c = used.get(bucket, 0)
                if c < 499:
                    used[bucket] = c + 1
                    break
                day = (day + 1) % days
            k = ((bucket * 2654435761) % 499 + c) % 499
            seq = 2 * k + (1 if male else 2)
            check = ID_CHECK[(area_sum[area] + day_sum[day] + seq_sum[seq]) % 11]
            buf.append(
                f'{{"name":"{name}","phone":"{phone}","id_number":"{area}{day_str[day]}{seq_str[seq]}{check}"}}\n'
            )
            if len(buf) >= chunk:
                yield len(buf), "".join(buf)
                buf = []
        if buf:
            yield len(buf), "".join(buf)

    # --- scan plan ----------------------------------------------------------------------------

    def scan_chunks(
        self, venue_ids: list[int], weights: list[float], days: int, start: dt.date, tz: str = "Asia/Shanghai"
    ) -> Iterator[tuple[int, str]]:
        """Yield ``(count, text)`` chunks of scan-plan CSV lines in time order."""
        rng = self.rng("scans")
        rand = rng.random
        cum = list(_cumulative(weights))
        top = cum[-1]
        n_res = self.spec.residents
        curve = daily_curve()
        zone = ZoneInfo(tz)
        per_day = self.spec.scans_per_day
        for d in range(days):
            day = start + dt.timedelta(days=d)
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(dt.UTC)
            acc = 0.0
            prev = 0
            for minute in range(1440):
                acc += curve[minute]
                upto = round(per_day * acc)
                count = upto - prev
                prev = upto
                if count <= 0:
                    continue
                stamp = (midnight + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
                millis = sorted(int(rand() * 60_000) for _ in range(count))
                lines = []
                for ms in millis:
                    venue = venue_ids[bisect.bisect_right(cum, rand() * top)]
                    lines.append(f"{stamp}{ms // 1000:02d}.{ms % 1000:03d}Z,{int(rand() * n_res)},{venue}\n")
                yield count, "".join(lines)


def daily_curve() -> list[float]:
    """Share of a day's scans per local minute: quiet nights, a morning rush (8:00), lunch (12:15)
    and a longer evening peak (18:30); sums to 1."""

    def bump(t: float, mu: float, sigma: float) -> float:
        return math.exp(-0.5 * ((t - mu) / sigma) ** 2)

    raw = []
    for minute in range(1440):
        t = minute / 60
        night = 0.02 if 6 <= t < 23 else 0.004
        raw.append(
            night
            + 1.0 * bump(t, 8.0, 0.9)
            + 0.7 * bump(t, 12.25, 0.8)
            + 0.35 * bump(t, 15.0, 2.0)
            + 1.0 * bump(t, 18.5, 1.3)
        )
    total = sum(raw)
    return [r / total for r in raw]


def _cumulative(values: list[float]) -> Iterator[float]:
    acc = 0.0
    for v in values:
        acc += v
        yield acc


def _lookup_table(items: Any, size: int) -> list[str]:
    """A table of ``size`` entries where each item appears in proportion to its weight."""
    pairs = list(items)
    counts = _allocate(size, [float(w) for _, w in pairs])
    table: list[str] = []
    for (item, _w), n in zip(pairs, counts, strict=True):
        table.extend([item] * n)
    return table


def _area_shares(areas: list[str]) -> list[tuple[str, float]]:
    shares = {code: share for code, _n, _x, _y, share in LANZHOU_DISTRICTS}
    return [(a, shares.get(a, 0.05)) for a in areas]


def _weighted_digits(digits: str, offset: int) -> int:
    return sum(int(c) * ID_WEIGHTS[offset + i] for i, c in enumerate(digits))


def _age_table(days: int) -> list[int]:
    """Day offsets (from BIRTH_START) of birth dates drawn in proportion to a simple age pyramid."""
    table: list[int] = []
    years = BIRTH_END.year - BIRTH_START.year + 1
    for y in range(years):
        age = BIRTH_END.year - (BIRTH_START.year + y)
        if age < 15:
            w = 11
        elif age < 60:
            w = 14 if 25 <= age <= 55 else 12
        elif age < 75:
            w = 8
        else:
            w = max(1, 8 - (age - 75) // 2)
        first = (dt.date(BIRTH_START.year + y, 1, 1) - BIRTH_START).days
        last = min(days, (dt.date(BIRTH_START.year + y + 1, 1, 1) - BIRTH_START).days)
        for k in range(first, last, 3):
            table.extend([k] * w)
    return table


# --- writing --------------------------------------------------------------------------------


def write_city(
    spec: CitySpec,
    seed: int,
    out_dir: Path,
    *,
    scan_days: int = 1,
    start_date: dt.date | None = None,
    progress: bool = True,
) -> Manifest:
    """Write venues.csv, popularity.csv, residents.ndjson, scans.csv (if any) and city.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    city = City(spec, seed)
    start = start_date or dt.date(2026, 11, 30)
    stream = sys.stderr if progress else io.StringIO()
    seconds: dict[str, float] = {}

    venue_ids: list[int] = []
    types: list[str] = []
    capacities: list[int] = []
    bar = Progress("venues", spec.venues, "venues", stream)
    with (out_dir / "venues.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(VENUE_COLUMNS)
        batch: list[tuple[Any, ...]] = []
        for row in city.venue_rows():
            batch.append(row)
            venue_ids.append(row[0])
            types.append(row[3])
            capacities.append(row[9])
            if len(batch) >= 10_000:
                writer.writerows(batch)
                bar.advance(len(batch))
                batch = []
        writer.writerows(batch)
        bar.advance(len(batch))
    seconds["venues"] = bar.finish()

    weights = city.popularity(types, capacities)
    with (out_dir / "popularity.csv").open("w", encoding="utf-8", newline="") as fh:
        fh.write("venue_id,weight\n")
        fh.writelines(f"{v},{w:.6e}\n" for v, w in zip(venue_ids, weights, strict=True))

    bar = Progress("residents", spec.residents, "residents", stream)
    with (out_dir / "residents.ndjson").open("wb") as fb:
        for count, text in city.resident_lines():
            fb.write(text.encode("utf-8"))
            bar.advance(count)
    seconds["residents"] = bar.finish()

    with (out_dir / "regions.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["code", "name"])
        writer.writerows(region_rows(city.districts))

    files = {
        "venues": "venues.csv",
        "popularity": "popularity.csv",
        "residents": "residents.ndjson",
        "regions": "regions.csv",
    }
    scans = spec.scans_per_day * scan_days
    if scan_days > 0:
        bar = Progress("scans", scans, "scans", stream)
        with (out_dir / "scans.csv").open("wb") as fb:
            fb.write((",".join(SCAN_COLUMNS) + "\n").encode())
            for count, text in city.scan_chunks(venue_ids, weights, scan_days, start):
                fb.write(text.encode())
                bar.advance(count)
        seconds["scans"] = bar.finish()
        files["scans"] = "scans.csv"
    manifest = Manifest(
        spec=spec,
        seed=seed,
        scan_days=scan_days,
        start_date=start.isoformat(),
        files=files,
        counts={
            "districts": len(city.districts),
            "streets": sum(len(d.streets) for d in city.districts),
            "communities": len(city.communities),
            "venues": spec.venues,
            "residents": spec.residents,
            "scans": scans if scan_days > 0 else 0,
        },
        districts=city.districts,
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
    (out_dir / "city.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(_manifest_for_disk(manifest)), indent=2)
    )
    return manifest


def region_rows(districts: list[District]) -> Iterator[tuple[str, str]]:
    """``(code, name)`` of every district, street and community: what ``POST /v1/regions/import``
    takes (``regions.csv``), so the console shows names where the codes appear."""
    for d in districts:
        yield d.code, d.name
        for s in d.streets:
            yield s.code, s.name
            for c in s.communities:
                yield c.code, c.name


def _manifest_for_disk(manifest: Manifest) -> Manifest:
    """The manifest without timings, so that the file is the same bytes for the same seed."""
    return msgspec.structs.replace(manifest, seconds={})


def read_manifest(out_dir: Path) -> Manifest:
    path = out_dir / "city.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; generate a city first (checkin loadtest city --out DIR)")
    return msgspec.json.decode(path.read_bytes(), type=Manifest)


def read_popularity(path: Path) -> tuple[list[int], list[float]]:
    ids: list[int] = []
    weights: list[float] = []
    with path.open(encoding="utf-8") as fh:
        next(fh, None)
        for line in fh:
            a, _, b = line.rstrip("\n").partition(",")
            ids.append(int(a))
            weights.append(float(b))
    return ids, weights
