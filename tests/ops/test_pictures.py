"""The picture inside an image (dedup.ops.pictures): a photo pasted on a textured canvas or set in a page is
found by its outline, one on a plain background by the background around it; a photo alone has none."""
import numpy as np
from PIL import Image, ImageDraw

from dedup.ops.pictures import inner_picture
from dedup.synth import encode, grid_canvas, textured_image


def iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def test_a_photo_pasted_on_a_canvas_is_found_by_its_outline():
    photo = textured_image(5).resize((384, 288))
    canvas = grid_canvas()
    canvas.paste(photo, (200, 120))
    box = inner_picture(np.asarray(canvas))
    assert box is not None and iou(box, (200, 120, 584, 408)) >= 0.6, box  # an outline can run on along a grid line


def test_a_photo_set_in_a_white_page_is_found():
    page = Image.new("RGB", (1200, 740), (250, 250, 250))
    draw = ImageDraw.Draw(page)
    for y in range(40, 700, 48):  # lines of text and buttons around the picture
        draw.text((30, y), "Home  Messages  Watch  Groups  Saved", fill=(60, 60, 60))
    page.paste(textured_image(6).resize((520, 390)), (330, 200))
    box = inner_picture(np.asarray(page))
    assert box is not None and iou(box, (330, 200, 850, 590)) >= 0.8, box


def test_a_photo_on_a_plain_background_of_its_own_brightness_is_found():
    """A photo pasted on a plain colour whose grey is the photo's own: its outline has no edge in grey, but
    the background floods from the corners and what is left is one rectangle."""
    from dedup.ops import pictures

    photo = textured_image(8).resize((360, 270))
    grey_level = int(np.asarray(photo.convert("L")).mean())
    canvas = Image.new("RGB", (900, 700), (grey_level + 60, grey_level - 40, grey_level + 20))
    canvas.paste(photo, (120, 300))
    rgb = np.asarray(canvas)
    box = inner_picture(rgb)
    assert box is not None and iou(box, (120, 300, 480, 570)) >= 0.9, box
    assert pictures._on_plain(rgb, (199, 256)) is not None


def test_an_object_on_a_plain_background_is_not_a_picture():
    """A product shot: an object on white floods to its outline, which is no rectangle; nor is a photo that
    reaches two borders of a plain canvas (a pad, bars: the content check's business)."""
    from PIL import ImageOps

    shot = Image.new("RGB", (800, 600), (255, 255, 255))
    ImageDraw.Draw(shot).ellipse([250, 120, 560, 480], fill=(180, 40, 40), outline=(90, 20, 20), width=6)
    assert inner_picture(np.asarray(shot)) is None
    padded = ImageOps.pad(textured_image(9), (900, 360), color=(20, 20, 20))  # bars left and right
    assert inner_picture(np.asarray(padded)) is None


def test_a_photo_alone_has_no_picture_inside():
    assert inner_picture(np.asarray(textured_image(7))) is None
    assert inner_picture(np.zeros((20, 20, 3), np.uint8)) is None  # too small to hold one


def test_an_outline_search_that_fails_loses_the_picture_not_the_image(monkeypatch):
    from dedup.ops import decode, pictures

    def broken(rgb):
        raise ValueError("no outline for this one")

    monkeypatch.setattr(pictures, "inner_picture", broken)
    arr, _, w, h, _, _, picture, box = decode.decode_both(encode(textured_image(3)), 64, 10**8, None, inner=True)
    assert arr.shape == (64, 64, 3) and (w, h) == (480, 360) and picture == b"" and box is None


def test_a_small_photo_in_a_card_whose_outline_stops_short_of_a_corner_is_found(monkeypatch):
    """A photo a quarter of a web page's width, in a white card: at the search's 256 px its outline's lines
    stop a few pixels short of a corner, where the photo's edge fades into the card; the third pass closes
    such a gap between a line's end and the line across it."""
    from dedup.ops import pictures

    page = Image.new("RGB", (1200, 736), (250, 250, 250))
    draw = ImageDraw.Draw(page)
    for y in range(40, 700, 48):
        draw.text((30, y), "Home  Messages  Watch  Groups  Saved", fill=(60, 60, 60))
    draw.rectangle([420, 120, 1100, 700], outline=(225, 225, 225), fill=(255, 255, 255))
    page.paste(textured_image(6).resize((300, 210)), (470, 300))
    from dedup.ops.decode import load_rgb

    saved = Image.open(__import__("io").BytesIO(encode(page, "JPEG", quality=90)))
    rgb = np.asarray(load_rgb(saved, 288))  # as the decode workers look: on the JPEG's draft, 600 x 368
    box = inner_picture(rgb)
    assert box is not None and iou(box, (235, 150, 385, 255)) >= 0.8, box
    monkeypatch.setattr(pictures, "CORNER", 0.0)
    assert inner_picture(rgb) is None
