"""Render the sample images in assets/ (run: python assets/make_assets.py).

Everything here is drawn by this script with the font bundled in Pillow, so the project may
redistribute it (see CREDITS.md). The output is deterministic for a given Pillow version.
"""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def centred(draw: ImageDraw.ImageDraw, y: int, text: str, size: int, fill: str, width: int, stroke: int = 0) -> int:
    f = font(size)
    box = draw.textbbox((0, 0), text, font=f, stroke_width=stroke)
    x = (width - (box[2] - box[0])) // 2
    draw.text((x, y), text, font=f, fill=fill, stroke_width=stroke, stroke_fill=fill)
    return y + (box[3] - box[1])


def right(d: ImageDraw.ImageDraw, x_right: int, y: int, text: str, size: int, stroke: int = 0) -> None:
    f = font(size)
    box = d.textbbox((0, 0), text, font=f, stroke_width=stroke)
    d.text((x_right - (box[2] - box[0]), y), text, font=f, fill="black", stroke_width=stroke, stroke_fill="black")


def book_cover() -> Image.Image:
    w, h = 1200, 1800
    img = Image.new("RGB", (w, h), (18, 32, 74))
    d = ImageDraw.Draw(img)
    # an orchard at dusk: moon, hills, trees
    d.ellipse((780, 260, 1000, 480), fill=(246, 222, 150))
    d.polygon([(0, 1250), (300, 1050), (650, 1180), (1000, 1000), (1200, 1100), (1200, 1800), (0, 1800)],
              fill=(34, 70, 60))
    rng = random.Random(7)
    for _ in range(14):
        x, y = rng.randint(60, 1140), rng.randint(1150, 1500)
        d.rectangle((x - 8, y, x + 8, y + 90), fill=(60, 40, 25))
        d.ellipse((x - 70, y - 110, x + 70, y + 20), fill=(46, 110, 70))
        for _ in range(4):
            ax, ay = x + rng.randint(-50, 50), y + rng.randint(-90, 0)
            d.ellipse((ax - 9, ay - 9, ax + 9, ay + 9), fill=(220, 80, 40))
    centred(d, 560, "THE QUIET", 150, "white", w, stroke=2)
    centred(d, 740, "ORCHARD", 150, "white", w, stroke=2)
    centred(d, 960, "by Mara Ellison", 64, (246, 222, 150), w)
    centred(d, 1660, "A NOVEL", 48, "white", w)
    return img


def book_photo(cover: Image.Image) -> Image.Image:
    """The cover lying on a table, photographed at a slight angle."""
    w, h = 1600, 1200
    rng = np.random.default_rng(3)
    grain = rng.normal(0, 1, (h, w)).cumsum(axis=1)
    grain = (grain - grain.min()) / (np.ptp(grain) or 1)
    table = np.stack([120 + 60 * grain, 80 + 40 * grain, 45 + 25 * grain], axis=2).astype(np.uint8)
    src = np.float32([[0, 0], [cover.width, 0], [cover.width, cover.height], [0, cover.height]])
    dst = np.float32([[560, 90], [1160, 130], [1130, 1110], [500, 1070]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(np.asarray(cover), matrix, (w, h))
    mask = cv2.warpPerspective(np.full((cover.height, cover.width), 255, np.uint8), matrix, (w, h))
    out = np.where(mask[..., None] > 0, warped, table)
    shade = np.linspace(1.05, 0.85, w)[None, :, None]
    out = np.clip(out * shade + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(out).filter(ImageFilter.GaussianBlur(0.6))


def ean13_modules(code12: str) -> tuple[str, str]:
    """The 95 bar modules of an EAN-13 code, and the full 13 digits with the check digit."""
    digits = [int(c) for c in code12]
    check = (10 - (sum(digits[0::2]) + 3 * sum(digits[1::2])) % 10) % 10
    digits.append(check)
    l_codes = ["0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011",
               "0110111", "0001011"]
    r_codes = ["".join("1" if b == "0" else "0" for b in c) for c in l_codes]  # complement of L
    g_codes = [c[::-1] for c in r_codes]  # R reversed
    parity = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]
    bits = "101"
    for i, d in enumerate(digits[1:7]):
        bits += l_codes[d] if parity[digits[0]][i] == "L" else g_codes[d]
    bits += "01010"
    for d in digits[7:]:
        bits += r_codes[d]
    bits += "101"
    return bits, "".join(map(str, digits))


def draw_barcode(d: ImageDraw.ImageDraw, x: int, y: int, code12: str, module: int = 4, height: int = 160) -> str:
    bits, full = ean13_modules(code12)
    for i, b in enumerate(bits):
        if b == "1":
            d.rectangle((x + i * module, y, x + (i + 1) * module - 1, y + height), fill="black")
    f = font(30)
    d.text((x, y + height + 6), f"{full[0]} {full[1:7]} {full[7:]}", font=f, fill="black")
    return full


def nutrition_label() -> Image.Image:
    w, h = 900, 1500
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    x0, x1 = 40, w - 40
    d.rectangle((30, 30, w - 30, 1180), outline="black", width=4)
    y = 45
    d.text((x0, y), "Nutrition Facts", font=font(78), fill="black", stroke_width=1, stroke_fill="black")
    y += 95
    d.text((x0, y), "8 servings per container", font=font(32), fill="black")
    y += 44
    d.text((x0, y), "Serving size", font=font(38), fill="black", stroke_width=1, stroke_fill="black")
    d.text((x1 - 300, y), "2/3 cup (55g)", font=font(38), fill="black", stroke_width=1, stroke_fill="black")
    y += 56
    d.rectangle((x0, y, x1, y + 16), fill="black")
    y += 26
    d.text((x0, y), "Amount per serving", font=font(26), fill="black")
    y += 32
    d.text((x0, y), "Calories", font=font(60), fill="black", stroke_width=1, stroke_fill="black")
    d.text((x1 - 150, y - 6), "230", font=font(70), fill="black", stroke_width=1, stroke_fill="black")
    y += 84
    d.rectangle((x0, y, x1, y + 8), fill="black")
    y += 14
    d.text((x1 - 190, y), "% Daily Value*", font=font(26), fill="black")
    y += 36
    rows = [
        ("Total Fat 8g", "10%", 0), ("Saturated Fat 1g", "5%", 1), ("Trans Fat 0g", "", 1),
        ("Cholesterol 0mg", "0%", 0), ("Sodium 160mg", "7%", 0), ("Total Carbohydrate 37g", "13%", 0),
        ("Dietary Fiber 4g", "14%", 1), ("Total Sugars 12g", "", 1), ("Includes 10g Added Sugars", "20%", 2),
        ("Protein 3g", "", 0),
    ]
    for label, dv, indent in rows:
        d.line((x0, y, x1, y), fill="black", width=2)
        d.text((x0 + 30 * indent, y + 8), label, font=font(32), fill="black")
        if dv:
            d.text((x1 - 80, y + 8), dv, font=font(32), fill="black")
        y += 50
    d.rectangle((x0, y, x1, y + 16), fill="black")
    y += 24
    for label, dv in [("Vitamin D 2mcg", "10%"), ("Calcium 260mg", "20%"), ("Iron 8mg", "45%"),
                      ("Potassium 235mg", "6%")]:
        d.text((x0, y + 6), label, font=font(32), fill="black")
        d.text((x1 - 80, y + 6), dv, font=font(32), fill="black")
        y += 48
        d.line((x0, y, x1, y), fill="black", width=2)
    y = 1200
    d.text((x0, y), "INGREDIENTS: WHOLE GRAIN OATS, SUGAR, CANOLA OIL,", font=font(28), fill="black")
    d.text((x0, y + 36), "ALMONDS, HONEY, SALT, SOY LECITHIN, NATURAL FLAVOR.", font=font(28), fill="black")
    d.text((x0, y + 84), "CONTAINS: ALMONDS, SOY.", font=font(28), fill="black", stroke_width=1,
           stroke_fill="black")
    draw_barcode(d, 480, 1300, "001234567890", module=3, height=120)
    return img


def receipt() -> Image.Image:
    w, h = 640, 1200
    img = Image.new("RGB", (w, h), (252, 252, 248))
    d = ImageDraw.Draw(img)
    y = 30
    y = centred(d, y, "GREENLEAF MARKET", 44, "black", w, stroke=1) + 14
    y = centred(d, y, "12 Harbour Road, Portsmouth", 24, "black", w) + 8
    y = centred(d, y, "Tel 023 9200 1234", 24, "black", w) + 24
    d.text((30, y), "Date: 14/03/2025", font=font(26), fill="black")
    d.text((400, y), "Time: 18:42", font=font(26), fill="black")
    y += 44
    d.line((30, y, w - 30, y), fill="black", width=2)
    y += 14
    items = [("Oat Milk 1L", 2, "1.85"), ("Sourdough Loaf", 1, "3.20"), ("Free Range Eggs x6", 1, "2.45"),
             ("Bananas 1kg", 1, "1.10"), ("Cheddar 400g", 1, "4.75")]
    for name, qty, price in items:
        amount = f"{qty * float(price):.2f}"
        d.text((30, y), f"{qty} x {name}", font=font(26), fill="black")
        right(d, w - 30, y, amount, 26)
        y += 38
    y += 6
    d.line((30, y, w - 30, y), fill="black", width=2)
    y += 14
    subtotal = sum(q * float(p) for _, q, p in items)
    vat = round(subtotal * 0.05, 2)
    total = subtotal + vat
    for label, value in [("SUBTOTAL", subtotal), ("VAT 5%", vat), ("TOTAL", total), ("CASH", 20.00),
                         ("CHANGE", 20.00 - total)]:
        strong = label == "TOTAL"
        d.text((30, y), label, font=font(30 if strong else 26), fill="black", stroke_width=1 if strong else 0,
               stroke_fill="black")
        right(d, w - 30, y, f"GBP {value:.2f}" if strong else f"{value:.2f}", 30 if strong else 26, int(strong))
        y += 44
    y += 30
    centred(d, y, "Thank you for shopping with us!", 24, "black", w)
    return img.crop((0, 0, w, y + 80))


def scenes_clip(path: Path, scenes: list[Image.Image]) -> list[str]:
    """A camera on a table: held still on each scene for 1.5 s, panning 0.6 s (motion blur) between them.

    960x540 at 12 frames/s (mp4v), about 0.6 MB; `vision watch --video` asks once per scene.
    """
    from vision.testing.clips import hold, pan, write_clip

    timeline = [hold(0, 1.5), pan(0, 1, 0.6), hold(1, 1.5), pan(1, 2, 0.6), hold(2, 1.5)]
    return write_clip(path, [np.asarray(s.convert("RGB")) for s in scenes], timeline, size=(960, 540), fps=12,
                      noise=1.0)


def main() -> None:
    cover = book_cover()
    cover.save(HERE / "book_cover.png", optimize=True)
    book_photo(cover).save(HERE / "book_photo.jpg", quality=88)
    label = nutrition_label()
    label.save(HERE / "nutrition_label.png", optimize=True)
    slip = receipt()
    slip.save(HERE / "receipt.png", optimize=True)
    scenes_clip(HERE / "scenes.mp4", [cover, label, slip])
    print("wrote", ", ".join(sorted(p.name for p in HERE.iterdir() if p.suffix in {".png", ".jpg", ".mp4"})))


if __name__ == "__main__":
    main()
