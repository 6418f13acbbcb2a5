"""Synthetic, deterministic customers: names and numbers that belong to nobody."""

from __future__ import annotations

import random
from dataclasses import dataclass

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
          "明", "超", "秀英", "华", "慧", "建国", "晓东", "雪梅", "志强"]
_FIRST = ["Aino", "Eero", "Helmi", "Juho", "Laura", "Mikko", "Sofia", "Ville", "Emma", "Oliver",
          "Grace", "Daniel", "Hannah", "Lucas", "Maria", "Noah"]
_LAST = ["Virtanen", "Korhonen", "Nieminen", "Mäkinen", "Smith", "Brown", "Wilson", "Taylor",
         "Lehtonen", "Laine", "Heikkinen", "Koskinen"]
# mobile prefixes of the mainland operators; the 8 digits after them are random
_MOBILE = ["138", "139", "150", "151", "158", "186", "187", "135", "136", "177", "199"]


@dataclass(frozen=True)
class SyntheticCustomer:
    account_no: str
    name: str
    phones: list[str]
    language: str
    sms_consent: bool


def customers_for(addresses: int, seed: int = 42, per_address: tuple[int, int] = (1, 3)):
    """Yield (address index, customer) for ``addresses`` addresses, 1-3 households each."""
    rng = random.Random(seed)
    n = 0
    for index in range(addresses):
        for unit in range(rng.randint(*per_address)):
            n += 1
            zh = rng.random() < 0.7
            name = (rng.choice(_SURNAMES) + rng.choice(_GIVEN) if zh
                    else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
            numbers = [f"+86{rng.choice(_MOBILE)}{rng.randrange(10**8):08d}"]
            if rng.random() < 0.15:  # a Beijing landline too
                numbers.append(f"+8610{rng.randrange(6 * 10**7, 7 * 10**7):08d}")
            yield index, unit, SyntheticCustomer(
                account_no=f"HEL-{n:06d}", name=name, phones=numbers,
                language="zh-CN" if zh else "en", sms_consent=rng.random() > 0.05)
