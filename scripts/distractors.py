"""Distractor brands for the evaluation scripts (`--distractors`): well-known sponsor names
that do not appear in the dev footage. They join the run's brand list, so every detection
of one is a false detection: a precision check of matching and spotting against a brand
list ten times longer than the footage's own. Names visible somewhere in the dev data
(adidas, Toyota, Elkjop, Umbro, Facebook on foocus boards, Unibet on a Bundesliga board
the manifest does not list, ...) are left out.
"""

from __future__ import annotations

NAMES = """
Emirates; Qatar Airways; Etihad; Heineken; Carlsberg; Budweiser; Nike; Visa; Pepsi; Lay's; Gatorade;
Vodafone; Allianz; Siemens; Bosch; Lufthansa; Continental; Castrol; Canon; Nikon; Rolex; Hublot; Tissot;
Chevrolet; Nissan; Mazda; Volvo; Peugeot; Renault; Opel; Skoda; Honda; Yamaha; Suzuki; Lenovo;
Huawei; Xiaomi; Alibaba; Amazon; Google; Microsoft; Spotify; Netflix; Disney; Lego; Nestle; Danone;
Gillette; Colgate; Nivea; Rexona; Sprite; Fanta; Powerade; Red Bull; Monster; Corona; Guinness; Tuborg;
Amstel; Peroni; Jameson; Hennessy; Martini; Bacardi; Smirnoff; Aviva; Barclays; HSBC; Citi; PayPal;
Klarna; Revolut; Rabobank; Commerzbank; Telekom; Orange; Movistar; Verizon; Armani; Gucci; Prada;
Versace; Zara; Uniqlo; Levi's; Reebok; Kappa; Joma; Hummel; Mizuno; Asics; Errea; Macron; Lotto;
Diadora; Fila; Nordea; Equinor; Telenor; Gjensidige; Lidl; Aldi; Tesco; Carrefour; Kaufland; Ikea;
Tipico; Ladbrokes; Betfair; Stake; Parimatch; Bet365; Betano; Superbet; Bwin; Betway; Sky;
Virgin; Airtel; Tata; Infosys; Aramco; Etisalat; Saudia; Visit Rwanda; Hisense; Mengniu; Wanda;
Vivo; Oppo; Crypto.com; Booking.com; EA Sports; PlayStation; Qualcomm; Intel; Samsung; Hyundai; Kia;
Coca-Cola; McDonald's; Mastercard; Gazprom; Santander; Audi; BMW; Mercedes-Benz; Volkswagen; Sony
"""


def distractor_brands(present: list[str], count: int) -> list[str]:
    """Up to `count` distractor names, leaving out any that shares a normalised name with a
    brand in `present` (either inside the other)."""
    from mpr.matching import tokens

    own = ["".join(tokens(name)) for name in present]
    out = []
    for name in (n.strip() for n in NAMES.replace("\n", " ").split(";")):
        compact = "".join(tokens(name))
        if compact and not any(compact in o or o in compact for o in own):
            out.append(name)
    return out[:count]
