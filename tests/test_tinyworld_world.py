"""TinyWorld 2's world without a model: shapes, renderer, judge, captions, parser and tokenizer.

The truths the tests compare against are worked out here, independently of the code under test: a
scene's attributes from the ``Scene`` built, masks from the formulas in ``shape_mask``'s docstring by a
plain loop over pixels, captions by this file's own regular expression for the grammar in ``spec``.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from timelab.tinyworld import spec
from timelab.tinyworld.captions import (
    all_words, binding_twin, caption, describe, sample_example, stated_attributes, unknown_words,
)
from timelab.tinyworld.judge import OracleJudge, as_images, attribute_of, find, shares, shows
from timelab.tinyworld.render import Scene, Thing, object_masks, render, shape_mask
from timelab.tinyworld.tokenizer import build_tokenizer

# The world's words, written out as the spec's docstring states them (not read from the code).
KINDS = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "big")
BACKGROUNDS = ("white", "black")
WHERE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
         "middle": "in the middle"}
SLOTS = ("left", "right", "top", "bottom", "middle")  # the slot order records list objects in
LAYOUTS = (("left", "right"), ("top", "bottom"))
PREFIXES = ("", "a photo of ", "an image of ", "a picture of ")
USUAL_COLOUR = {"circle": "red", "square": "green", "triangle": "yellow", "cross": "purple"}


def docstring_words() -> dict[str, tuple[str, ...]]:
    """The words ``spec``'s docstring lists: its attribute table (``kind  circle | square ...``) and the
    quoted alternatives of its grammar's ``where`` and ``prefix`` rules."""
    doc = spec.__doc__
    table = dict(re.findall(r"^ {4}(kind|colour|size|position|background) +(\w+(?: \| \w+)*)", doc, re.M))
    words = {attribute: tuple(values.split(" | ")) for attribute, values in table.items()}
    for rule in ("where", "prefix"):
        words[rule] = tuple(re.findall(r'"([^"]*)"', re.search(rf"^ +{rule} +:=(.*)$", doc, re.M).group(1)))
    return words


def test_the_spec_docstring_the_code_and_these_tests_name_the_same_world():
    """The docstring is the readable specification, the code is what runs, and the tests below iterate
    over this file's words: a value added to (or renamed in) one and not the others fails here."""
    words = docstring_words()
    assert set(words) == {"kind", "colour", "size", "position", "background", "where", "prefix"}, words
    assert words["kind"] == spec.KINDS == KINDS
    assert words["colour"] == tuple(spec.COLOURS) == COLOURS
    assert words["size"] == tuple(spec.SIZES) == SIZES
    assert words["background"] == tuple(spec.BACKGROUNDS) == BACKGROUNDS
    assert words["position"] == tuple(spec.POSITIONS) == tuple(spec.WHERE) == SLOTS
    assert words["where"] == tuple(spec.WHERE.values()) == tuple(WHERE[slot] for slot in SLOTS)
    assert words["prefix"] == tuple(spec.PREFIXES) == PREFIXES
    assert set(spec.MENTION) == set(spec.ATTRIBUTES) - {"kind"}, "the kind is always stated, the rest sometimes"
    assert re.search(r"(\d+)x(\d+) pixels", spec.__doc__).groups() == (str(spec.IMAGE_SIZE),) * 2
    assert all(len(set(layout)) == 2 and set(layout) <= set(SLOTS) - {"middle"} for layout in spec.LAYOUTS)


def test_the_spec_priors_are_distributions_with_one_usual_value():
    """Every prior is a distribution over exactly the spec's values; each kind's usual colour (the
    docstring's) is strictly its most likely one; blue is nobody's usual colour and rare for every kind
    (a clean edit destination); the cross splits between exactly two colours (the bias experiment);
    only the square has a usual size. Rates of mention and phrasing are probabilities."""
    for prior, values in ((spec.COLOUR_PRIOR, spec.COLOURS), (spec.SIZE_PRIOR, spec.SIZES)):
        assert tuple(prior) == spec.KINDS
        for kind, shares in prior.items():
            assert tuple(shares) == tuple(values) and all(0 <= p <= 1 for p in shares.values()), (kind, shares)
            assert sum(shares.values()) == pytest.approx(1.0), (kind, shares)
    for kind, usual in USUAL_COLOUR.items():
        prior = spec.COLOUR_PRIOR[kind]
        assert spec.usual_colour(kind) == usual
        assert all(prior[usual] > p for colour, p in prior.items() if colour != usual), (kind, dict(prior))
    assert max(p["blue"] for p in spec.COLOUR_PRIOR.values()) < 0.05, "blue is nobody's usual colour"
    assert {c for c, p in spec.COLOUR_PRIOR["cross"].items() if p > 0} == {"purple", "yellow"}
    assert {kind: spec.usual_size(kind) for kind in KINDS} == {"circle": None, "square": "big", "triangle": None,
                                                              "cross": None}
    assert all(len(set(spec.SIZE_PRIOR[k].values())) == 1 for k in KINDS if k != "square"), "small or big alike"
    assert all(0 < p < 1 for p in spec.MENTION.values()) and 0 < spec.TWO_OBJECTS < 1
    assert sum(spec.PREFIXES.values()) == pytest.approx(1.0) and 0 < spec.EMPTY_CAPTION_RATE < 1
    # The docstring's worked example: 86% of a red circle's captions leave out "red".
    p = spec.COLOUR_PRIOR["circle"]["red"]
    omit, say = 1 - spec.MENTION["colour"], spec.MENTION["colour"]
    assert omit * p / (omit * p + say / len(COLOURS)) == pytest.approx(0.86, abs=0.005)


def test_the_spec_colours_are_far_apart_as_the_judge_sees_them():
    """``spec.COLOURS``: "far apart from one another and from both backgrounds", measured in the oracle
    judge's own unit: every colour is farther than its foreground threshold from both backgrounds (else
    it would miss objects of that colour), and from every other colour (else it would confuse them)."""
    threshold = OracleJudge().threshold
    paints = {**spec.COLOURS, **spec.BACKGROUNDS}
    assert all(0 <= v <= 1 for rgb in paints.values() for v in rgb) and len(paints) == len(COLOURS) + 2
    for a, b in itertools.combinations(paints, 2):
        if a in spec.COLOURS or b in spec.COLOURS:
            assert math.dist(paints[a], paints[b]) > threshold, (a, b, math.dist(paints[a], paints[b]))


# ---------------------------------------------------------------------------------------------------
# Shapes and masks


def loop_mask(kind: str, size: str, centre: tuple[int, int]) -> np.ndarray:
    """``shape_mask``'s docstring, pixel by pixel: pixel centres measured from the object's centre."""
    r = spec.SIZES[size]
    mask = np.zeros((32, 32), dtype=bool)
    for row in range(32):
        for col in range(32):
            x, y = col + 0.5 - centre[0], row + 0.5 - centre[1]
            if kind == "circle":
                inside = math.hypot(x, y) <= r
            elif kind == "square":
                inside = abs(x) <= 0.8 * r and abs(y) <= 0.8 * r
            elif kind == "triangle":
                inside = -r <= y <= r and abs(x) <= (y + r) / 2
            else:
                inside = max(abs(x), abs(y)) <= r and min(abs(x), abs(y)) <= r / 3
            mask[row, col] = inside
    return mask


# Pixel counts worked out by hand from the formulas (half-integer pixel centres, r = 3.5 and 6).
PIXELS = {("circle", "small"): 32, ("circle", "big"): 112, ("square", "small"): 36, ("square", "big"): 100,
          ("triangle", "small"): 32, ("triangle", "big"): 72, ("cross", "small"): 28, ("cross", "big"): 80}


@pytest.mark.parametrize("kind,size", list(PIXELS))
def test_shape_masks_follow_their_formulas(kind, size):
    for centre in [(16, 16), (7, 14), (25, 9), (17, 23)]:
        mask = shape_mask(kind, size, centre)
        assert mask.shape == (32, 32) and mask.dtype == bool
        np.testing.assert_array_equal(mask, loop_mask(kind, size, centre), err_msg=f"{kind} {size} at {centre}")
        assert mask.sum() == PIXELS[kind, size]
    rows, cols = np.nonzero(shape_mask(kind, size, (16, 16)))
    r = spec.SIZES[size]
    # pixels each side of the centre line the shape reaches: half-integer offsets h = 0.5, 1.5, ... inside it
    if kind == "circle":  # widest on the rows next to the centre line (|y| = 0.5)
        reach = sum(1 for k in range(8) if (k + 0.5) ** 2 + 0.25 <= r * r)
    else:
        half = 0.8 * r if kind == "square" else r
        reach = sum(1 for k in range(8) if k + 0.5 <= half)
    assert (cols.min(), cols.max()) == (16 - reach, 16 + reach - 1), "symmetric about the centre, full width"
    widths = [int(shape_mask(kind, size, (16, 16))[row].sum()) for row in sorted(set(rows))]
    if kind == "triangle":
        assert widths == sorted(widths) and widths[0] == 2 and widths[-1] == 2 * reach, "apex up, base down"
    else:
        assert rows.min() == 16 - reach and rows.max() == 16 + reach - 1


def test_masks_are_read_only_and_rendering_paints_exactly_them():
    with pytest.raises(ValueError):
        shape_mask("circle", "big", (16, 16))[0, 0] = True
    scene = Scene((Thing("cross", "blue", "big", "left", (1, -2)), Thing("circle", "yellow", "small", "right")),
                  "black")
    image = render(scene)
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    masks = object_masks(scene)
    np.testing.assert_array_equal(masks[0], loop_mask("cross", "big", (9, 14)))
    np.testing.assert_array_equal(masks[1], loop_mask("circle", "small", (24, 16)))
    for mask, colour in zip(masks, ("blue", "yellow")):
        assert np.all(image[mask] == np.float32(spec.COLOURS[colour]))
    assert np.all(image[~(masks[0] | masks[1])] == np.float32(spec.BACKGROUNDS["black"]))


def allowed_offsets(slot: str) -> list[tuple[int, int]]:
    """Every centre offset spec.JITTER allows at a slot: (along, across) the axis that separates the layout
    holding the slot; the middle slot as left and right (spec says so)."""
    along, across = spec.JITTER
    jx, jy = (across, along) if slot in ("top", "bottom") else (along, across)
    return [(dx, dy) for dx in range(-jx, jx + 1) for dy in range(-jy, jy + 1)]


def test_jitter_is_one_pixel_along_and_two_across():
    assert spec.JITTER == (1, 2)
    assert len(allowed_offsets("left")) == len(allowed_offsets("top")) == 15
    assert max(dx for dx, _ in allowed_offsets("left")) == 1 and max(dy for _, dy in allowed_offsets("top")) == 1


def test_every_allowed_object_fits_whole_inside_the_image():
    for kind, size, slot in itertools.product(KINDS, SIZES, SLOTS):
        for offset in allowed_offsets(slot):
            thing = Thing(kind, "red", size, slot, offset)
            x, y = spec.POSITIONS[slot]
            assert thing.centre == (x + offset[0], y + offset[1])
            Scene((thing,))  # accepted
            assert shape_mask(kind, size, thing.centre).sum() == PIXELS[kind, size], "no pixel cut off"


def dilate(masks: np.ndarray, by: int) -> np.ndarray:
    """Grow (N, H, W) masks by ``by`` pixels in every direction (a (2 by + 1)^2 square)."""
    padded = np.pad(masks, ((0, 0), (by, by), (by, by)))
    grown = np.zeros_like(masks)
    h, w = masks.shape[1:]
    for dy in range(2 * by + 1):
        for dx in range(2 * by + 1):
            grown |= padded[:, dy:dy + h, dx:dx + w]
    return grown


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_objects_never_touch_and_keep_a_two_pixel_gap(layout):
    """Exhaustive: every pair of different kinds, every size pair, every allowed offset of both."""
    first, second = layout
    things = {slot: [Thing(k, "red", s, slot, o) for k in KINDS for s in SIZES for o in allowed_offsets(slot)]
              for slot in layout}
    masks = {slot: np.stack([shape_mask(t.kind, t.size, t.centre) for t in things[slot]]) for slot in layout}
    # A gap of at least 2 pixels: no pixel of one object within 2 pixels (any direction) of the other.
    near = dilate(masks[first], 2).reshape(len(things[first]), -1).astype(np.int64)
    touching = near @ masks[second].reshape(len(things[second]), -1).T.astype(np.int64)
    different = np.array([[a.kind != b.kind for b in things[second]] for a in things[first]])
    assert different.sum() == 4 * 3 * 4 * 15 * 15
    bad = np.argwhere((touching > 0) & different)
    assert len(bad) == 0, [(things[first][i], things[second][j]) for i, j in bad[:5]]
    # ... and the gap is not wider than 2 somewhere: two big objects pushed together come within 3 pixels.
    assert (dilate(masks[first], 3).reshape(len(things[first]), -1).astype(np.int64)
            @ masks[second].reshape(len(things[second]), -1).T.astype(np.int64))[different].max() > 0
    for a, b in [(things[first][0], things[second][-1]), (things[first][-1], things[second][0])]:
        if a.kind != b.kind:
            Scene((a, b))  # such a scene is valid


# ---------------------------------------------------------------------------------------------------
# The judge


def truth(scene: Scene) -> dict:
    """The record a perfect reader gives: the background and the objects in slot order."""
    objects = [{"kind": t.kind, "colour": t.colour, "size": t.size, "position": t.position} for t in scene.objects]
    objects.sort(key=lambda o: SLOTS.index(o["position"]))
    return {"background": scene.background, "objects": objects}


@pytest.mark.parametrize("kind", KINDS)
def test_judge_reads_every_one_object_scene_exactly(kind):
    """Every colour x size x background, at every slot and every allowed offset."""
    scenes = [Scene((Thing(kind, colour, size, slot, offset),), background)
              for colour, size, background, slot in itertools.product(COLOURS, SIZES, BACKGROUNDS, SLOTS)
              for offset in allowed_offsets(slot)]
    assert len(scenes) == 5 * 2 * 2 * (5 * 15)  # colours x sizes x backgrounds x (slots x offsets)
    records = OracleJudge().read(np.stack([render(s) for s in scenes]))
    wrong = [(s, r) for s, r in zip(scenes, records) if r != truth(s)]
    assert not wrong, f"{len(wrong)} misread, e.g. {wrong[:3]}"


def two_object_scenes() -> list[Scene]:
    """Both layouts, both orders, every ordered kind pair and size pair, each with the two objects pushed
    together as far as the jitter allows and once more at random offsets; colours and backgrounds vary
    (two objects of one colour included)."""
    rng = np.random.default_rng(7)
    scenes = []
    for (a_slot, b_slot), (a_kind, b_kind), (a_size, b_size), swap in itertools.product(
            LAYOUTS, itertools.permutations(KINDS, 2), itertools.product(SIZES, SIZES), (False, True)):
        along = 0 if a_slot == "left" else 1
        toward_a, toward_b = [0, 0], [0, 0]
        toward_a[along], toward_b[along] = spec.JITTER[0], -spec.JITTER[0]
        for offsets in [(tuple(toward_a), tuple(toward_b)),
                        tuple(tuple(allowed_offsets(s)[rng.integers(15)]) for s in (a_slot, b_slot))]:
            colours = [COLOURS[i] for i in rng.integers(len(COLOURS), size=2)]
            things = (Thing(a_kind, colours[0], a_size, a_slot, offsets[0]),
                      Thing(b_kind, colours[1], b_size, b_slot, offsets[1]))
            scenes.append(Scene(things[::-1] if swap else things, BACKGROUNDS[rng.integers(2)]))
    return scenes


def test_judge_reads_two_object_scenes_exactly_listing_objects_in_slot_order():
    scenes = two_object_scenes()
    assert len(scenes) == 2 * 12 * 4 * 2 * 2
    assert any(s.objects[0].colour == s.objects[1].colour for s in scenes)
    records = OracleJudge().read([render(s) for s in scenes])  # a list of arrays works too
    wrong = [(s, r) for s, r in zip(scenes, records) if r != truth(s)]
    assert not wrong, f"{len(wrong)} misread, e.g. {wrong[:3]}"
    for scene, record in zip(scenes, records):  # the order, spelled out: left before right, top before bottom
        assert [o["position"] for o in record["objects"]] in (["left", "right"], ["top", "bottom"])


def test_judge_reads_pil_images_and_batches():
    from PIL import Image

    scenes = [Scene.single("triangle", "purple", "small", "top", "black"), Scene.single("square", "green")]
    images = [Image.fromarray(np.round(render(s) * 255).astype(np.uint8)) for s in scenes]
    assert OracleJudge().read(images) == [truth(s) for s in scenes]
    assert as_images(render(scenes[0])).shape == (1, 32, 32, 3)
    assert OracleJudge().read(np.stack([render(s) for s in scenes])) == [truth(s) for s in scenes]


@pytest.mark.parametrize("sigma", [0.05, 0.08])
def test_judge_survives_mild_noise(sigma):
    rng = np.random.default_rng(11)
    scenes = [sample_example(rng)[0] for _ in range(300)]
    clean = np.stack([render(s) for s in scenes])
    noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1).astype(np.float32)
    records = OracleJudge().read(noisy)
    right = np.mean([r == truth(s) for s, r in zip(scenes, records)])
    assert right >= 0.98, f"only {right:.1%} read right at sigma {sigma}"


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_blank_images_have_no_objects(background):
    blank = np.full((32, 32, 3), spec.BACKGROUNDS[background], dtype=np.float32)
    assert OracleJudge().read(blank) == [{"background": background, "objects": []}]
    assert OracleJudge().matches(blank, "a circle") == [False]
    specks = blank.copy()
    specks[3:5, 3:5] = spec.COLOURS["red"]  # 4 pixels: too few to be an object
    assert OracleJudge().read(specks)[0]["objects"] == []


@pytest.mark.parametrize("shape,got", [((16, 16, 3), "16x16"), ((2, 64, 64, 3), "64x64"), ((32, 16, 3), "32x16")])
def test_judge_refuses_images_of_another_size(shape, got):
    with pytest.raises(ValueError, match="32x32") as error:
        OracleJudge().read(np.zeros(shape, dtype=np.float32))
    assert got in str(error.value)
    with pytest.raises(ValueError, match="RGB"):
        OracleJudge().read(np.zeros((32, 32), dtype=np.float32))


# ---------------------------------------------------------------------------------------------------
# shows / matches


TWO = Scene((Thing("square", "blue", "small", "right", (0, 1)), Thing("circle", "red", "big", "left", (-1, 0))),
            "black")


@pytest.mark.parametrize("prompt,expected", [
    ("a circle and a square", True),
    ("a square and a circle", True),
    ("a photo of a red circle on the left and a small blue square on the right on a black background", True),
    ("a blue square on the right and a big circle on the left", True),
    ("an image of a circle and a square on a black background", True),
    ("a circle", False),  # one object too few
    ("a square", False),
    ("a circle and a triangle", False),
    ("a circle on the right and a square on the left", False),
    ("a blue circle and a square", False),
    ("a circle and a big square", False),
    ("a circle and a square on a white background", False),
    ("a circle at the top and a square at the bottom", False),
])
def test_matches_two_object_scenes(prompt, expected):
    assert OracleJudge().matches(render(TWO), prompt) == [expected]
    assert shows(truth(TWO), prompt) is expected


@pytest.mark.parametrize("prompt,expected", [
    ("a photo of a circle", True),
    ("a big red circle on a white background", True),
    ("A Picture Of A Big Red Circle In The Middle", True),
    ("a circle in the middle", True),
    ("a blue circle", False),
    ("a small circle", False),
    ("a circle on the left", False),
    ("a circle on a black background", False),
    ("a square", False),
    ("a circle and a square", False),  # one object too many
])
def test_matches_checks_only_stated_attributes(prompt, expected):
    scene = Scene.single("circle", "red", "big", "middle", "white")
    assert OracleJudge().matches(render(scene), prompt) == [expected]


def test_matches_gives_one_answer_per_image():
    images = np.stack([render(Scene.single("cross", "yellow", "small")), render(Scene.single("cross", "purple"))])
    assert OracleJudge().matches(images, "a purple cross") == [False, True]
    assert OracleJudge().matches(images, "a cross") == [True, True]


def test_shows_on_hand_written_records():
    record = {"background": "white", "objects": [{"kind": "circle", "colour": "red", "size": "big", "position": "top"},
                                                 {"kind": "cross", "colour": "blue", "size": "small",
                                                  "position": "bottom"}]}
    assert shows(record, "a cross and a circle")
    assert shows(record, "a small blue cross at the bottom and a big red circle at the top on a white background")
    assert not shows(record, "a cross and a circle on a black background")
    assert not shows(record, "a cross")
    assert not shows(record, "a cross and a square")
    assert not shows({"background": "white", "objects": []}, "a cross")


def test_find_attribute_of_and_shares():
    one = {"background": "black", "objects": [{"kind": "square", "colour": "green", "size": "big", "position": "left"}]}
    two = {"background": "white", "objects": [{"kind": "square", "colour": "blue", "size": "big", "position": "left"},
                                              {"kind": "circle", "colour": "red", "size": "small",
                                               "position": "right"}]}
    none = {"background": "white", "objects": []}
    assert find(two, "circle") == two["objects"][1] and find(two, "cross") is None
    assert attribute_of(one, "colour") == "green" and attribute_of(two, "colour") == "none"
    assert attribute_of(two, "colour", "circle") == "red" and attribute_of(two, "size", "cross") == "none"
    assert attribute_of(none, "kind") == "none" and attribute_of(two, "background") == "white"
    assert shares([one, two, two, none], "colour", "square") == {"blue": 0.5, "green": 0.25, "none": 0.25}
    assert shares([one, two, one, none], "colour") == {"green": 0.5, "none": 0.5}
    with pytest.raises(ValueError):
        shares([], "colour")


# ---------------------------------------------------------------------------------------------------
# Captions: the grammar, read by this file's own parser


OBJECT = (rf"a (?:({'|'.join(SIZES)}) )?(?:({'|'.join(COLOURS)}) )?({'|'.join(KINDS)})"
          rf"(?: ({'|'.join(WHERE.values())}))?")
CAPTION = re.compile(rf"({'|'.join(p for p in PREFIXES if p)})?{OBJECT}(?: and {OBJECT})?"
                     rf"(?: on a ({'|'.join(BACKGROUNDS)}) background)?")
SLOT_OF = {words: slot for slot, words in WHERE.items()}


def parse(text: str) -> tuple[str, list[dict], str | None]:
    """(prefix, stated attributes per object in caption order, background) of a grammar caption."""
    match = CAPTION.fullmatch(text)
    assert match, f"not in the grammar: {text!r}"
    groups = match.groups()
    objects = []
    for size, colour, kind, where in (groups[1:5], groups[5:9]):
        if kind is None:
            continue
        stated = {"kind": kind, "size": size, "colour": colour, "position": SLOT_OF.get(where)}
        objects.append({a: v for a, v in stated.items() if v is not None})
    return groups[0] or "", objects, groups[9]


def test_own_parser_reads_the_grammar():
    assert parse("a photo of a big red circle on the left and a square on the right on a black background") == (
        "a photo of ", [{"kind": "circle", "size": "big", "colour": "red", "position": "left"},
                        {"kind": "square", "position": "right"}], "black")
    assert parse("a circle on a white background") == ("", [{"kind": "circle"}], "white")
    assert not CAPTION.fullmatch("a red big circle") and not CAPTION.fullmatch("a circle and a square and a cross")


def binomial_tolerance(p: float, n: int, z: float = 4.5) -> float:
    return z * math.sqrt(p * (1 - p) / n) + 1e-9


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(2024)
    return [sample_example(rng) for _ in range(20_000)]


def test_sampled_scenes_follow_the_spec(samples):
    counts = {1: 0, 2: 0}
    for scene, _ in samples:
        counts[len(scene.objects)] += 1
        if len(scene.objects) == 2:
            a, b = scene.objects
            assert a.kind != b.kind
            assert tuple(sorted((a.position, b.position))) in {("left", "right"), ("bottom", "top")}
        for thing in scene.objects:
            assert thing.offset in allowed_offsets(thing.position), thing
            assert all(type(v) is int for v in thing.offset)
    n = len(samples)
    assert abs(counts[2] / n - spec.TWO_OBJECTS) < binomial_tolerance(spec.TWO_OBJECTS, n)
    slots = {slot: sum(s.objects[0].position == slot for s, _ in samples if len(s.objects) == 1) for slot in SLOTS}
    assert all(abs(c / counts[1] - 0.2) < binomial_tolerance(0.2, counts[1]) for c in slots.values()), slots


def test_every_stated_attribute_is_true_of_its_scene(samples):
    empty = 0
    positions_stated = {True: 0, False: 0}
    slot_order = {"slot order": 0, "reversed": 0}
    prefixes = dict.fromkeys(PREFIXES, 0)
    words = set()
    for scene, text in samples:
        if text == "":
            empty += 1
            continue
        prefix, objects, background = parse(text)
        prefixes[prefix] += 1
        words.update(text.split())
        assert sorted(o["kind"] for o in objects) == sorted(t.kind for t in scene.objects), (scene, text)
        by_kind = {t.kind: t for t in scene.objects}
        for stated in objects:
            thing = by_kind[stated["kind"]]
            assert all(getattr(thing, a) == v for a, v in stated.items()), (scene, text)
        assert background in (None, scene.background), (scene, text)
        said = ["position" in o for o in objects]
        assert len(set(said)) == 1, f"positions for both objects or neither: {text!r}"
        positions_stated[said[0]] += 1
        if len(objects) == 2:
            named = [by_kind[o["kind"]].position for o in objects]
            slot_order["slot order" if SLOTS.index(named[0]) < SLOTS.index(named[1]) else "reversed"] += 1
        # describe reads the same attributes back
        description = describe(text)
        assert description.objects == objects and description.background == background, text
    n = len(samples)
    assert abs(empty / n - spec.EMPTY_CAPTION_RATE) < binomial_tolerance(spec.EMPTY_CAPTION_RATE, n)
    captioned = n - empty
    p = spec.MENTION["position"]
    assert abs(positions_stated[True] / captioned - p) < binomial_tolerance(p, captioned)
    for prefix, share in spec.PREFIXES.items():
        assert abs(prefixes[prefix] / captioned - share) < binomial_tolerance(share, captioned), prefix
    pairs = sum(slot_order.values())
    assert abs(slot_order["reversed"] / pairs - 0.5) < binomial_tolerance(0.5, pairs), "either order"
    assert words <= set(all_words()), words - set(all_words())


def object_statements(samples):
    """(thing, stated attributes) for every object of every non-empty caption, and the background stated."""
    for scene, text in samples:
        if text:
            _, objects, background = parse(text)
            by_kind = {o["kind"]: o for o in objects}
            for thing in scene.objects:
                yield thing, by_kind[thing.kind], background, scene


def test_mention_rates_and_uniform_stated_values(samples):
    statements = list(object_statements(samples))
    n = len(statements)
    for attribute in ("colour", "size"):
        p = spec.MENTION[attribute]
        stated = [s[attribute] for _, s, _, _ in statements if attribute in s]
        assert abs(len(stated) / n - p) < binomial_tolerance(p, n), attribute
        values = COLOURS if attribute == "colour" else SIZES
        for value in values:  # a stated value is drawn uniformly, whatever the kind
            share = 1 / len(values)
            assert abs(stated.count(value) / len(stated) - share) < binomial_tolerance(share, len(stated)), value
    scenes = {id(scene): background for _, _, background, scene in statements}
    p = spec.MENTION["background"]
    said = sum(b is not None for b in scenes.values())
    assert abs(said / len(scenes) - p) < binomial_tolerance(p, len(scenes))


@pytest.mark.parametrize("attribute,prior", [("colour", spec.COLOUR_PRIOR), ("size", spec.SIZE_PRIOR)])
def test_captions_that_omit_an_attribute_plant_its_prior(samples, attribute, prior):
    omitted = {k: [] for k in KINDS}
    for thing, stated, _, _ in object_statements(samples):
        if attribute not in stated:
            omitted[thing.kind].append(getattr(thing, attribute))
    for kind, values in omitted.items():
        assert len(values) > 2500, (kind, len(values))
        for value, p in prior[kind].items():
            share = values.count(value) / len(values)
            if p == 0:
                assert share == 0, (kind, value)
            else:
                assert abs(share - p) < binomial_tolerance(p, len(values)), (kind, value, share, p)


def test_usual_colours_are_mostly_left_unsaid(samples):
    """Of the objects that have their kind's usual colour, the share whose caption omits it (spec: 86% for
    red circles): P(omit) P(usual | omit) / (that + P(say) P(usual | say))."""
    for kind, usual in USUAL_COLOUR.items():
        omitted = [("colour" not in stated) for thing, stated, _, _ in object_statements(samples)
                   if thing.kind == kind and thing.colour == usual]
        omit, say = 1 - spec.MENTION["colour"], spec.MENTION["colour"]
        expected = omit * spec.COLOUR_PRIOR[kind][usual] / (omit * spec.COLOUR_PRIOR[kind][usual] + say / 5)
        if kind != "cross":
            assert expected == pytest.approx(0.864, abs=0.001)
        assert abs(np.mean(omitted) - expected) < binomial_tolerance(expected, len(omitted)), kind


def test_caption_writes_the_grammar():
    scene = Scene.single("cross", "purple", "small", "bottom", "black")
    assert caption(scene, {"colour", "size", "background"}, "a picture of ") == (
        "a picture of a small purple cross on a black background")
    assert caption(scene) == "a cross"
    assert caption(scene, {"position"}, "an image of ") == "an image of a cross at the bottom"
    assert caption(TWO, [{"colour", "position"}, {"size", "position", "background"}], order=[1, 0]) == (
        "a big circle on the left and a blue square on the right on a black background")
    assert caption(TWO, {"size"}) == "a small square and a big circle"
    with pytest.raises(ValueError, match="position"):
        caption(TWO, [{"position"}, set()])
    with pytest.raises(ValueError, match="prefix"):
        caption(scene, prefix="a drawing of ")
    with pytest.raises(ValueError, match="kind"):
        caption(scene, {"kind"})
    with pytest.raises(ValueError, match="order"):
        caption(TWO, order=[0, 0])


# ---------------------------------------------------------------------------------------------------
# describe / stated_attributes


@pytest.mark.parametrize("prompt,objects,background", [
    ("a circle", [{"kind": "circle"}], None),
    ("an image of a red circle", [{"kind": "circle", "colour": "red"}], None),
    ("An Image Of A Big Red Circle On A Black Background",
     [{"kind": "circle", "colour": "red", "size": "big"}], "black"),
    ("a red circle on the left and a square on the right on a black background",
     [{"kind": "circle", "colour": "red", "position": "left"}, {"kind": "square", "position": "right"}], "black"),
    ("a picture of a small yellow triangle at the top and a cross at the bottom",
     [{"kind": "triangle", "colour": "yellow", "size": "small", "position": "top"},
      {"kind": "cross", "position": "bottom"}], None),
    ("a photo of a cross in the middle on a white background", [{"kind": "cross", "position": "middle"}], "white"),
    ("", [], None),
])
def test_describe_reads_stated_attributes(prompt, objects, background):
    description = describe(prompt)
    assert description.objects == objects and description.background == background
    if len(objects) <= 1:
        expected = dict(objects[0]) if objects else {}
        if background:
            expected["background"] = background
        assert stated_attributes(prompt) == expected


@pytest.mark.parametrize("prompt,names", [
    ("a pack of roses", ["pack", "roses"]),
    ("a red circle, on a black background", [","]),
    ("a dog and a square", ["dog"]),
])
def test_describe_names_unknown_words(prompt, names):
    assert unknown_words(prompt) == names
    with pytest.raises(ValueError) as error:
        describe(prompt)
    assert all(repr(name) in str(error.value) for name in names), str(error.value)
    with pytest.raises(ValueError):
        stated_attributes(prompt)


def test_describe_refuses_malformed_prompts_clearly():
    with pytest.raises(ValueError, match=r"'a red'.*names no object kind"):
        describe("a red and a circle")
    with pytest.raises(ValueError, match=r"several colours: \['blue', 'red'\]"):
        describe("a red blue circle")
    with pytest.raises(ValueError, match="several sizes"):
        describe("a circle and a big small square")
    with pytest.raises(ValueError, match="background"):
        describe("a white circle")
    with pytest.raises(ValueError, match="2 objects"):
        stated_attributes("a circle and a square")


@pytest.mark.parametrize("prompt", ["a circle on a red background", "a circle on a square background"])
def test_describe_refuses_a_background_that_is_not_one(prompt):
    with pytest.raises(ValueError, match="background"):
        describe(prompt)


# ---------------------------------------------------------------------------------------------------
# Scene validation


@pytest.mark.parametrize("make,message", [
    (lambda: Scene((Thing("circle", "red", "big", "left"), Thing("circle", "blue", "big", "right"))), "circle"),
    (lambda: Scene((Thing("circle", "red", "big", "left"), Thing("square", "blue", "big", "top"))), "left"),
    (lambda: Scene((Thing("circle", "red", "big", "left"), Thing("square", "blue", "big", "left"))), "left"),
    (lambda: Scene((Thing("circle", "red", "big", "middle"), Thing("square", "blue", "big", "right"))), "middle"),
    (lambda: Scene(()), "one or two"),
    (lambda: Scene(tuple(Thing(k, "red", "small", p) for k, p in zip(KINDS, ("left", "right", "top")))), "one or two"),
    (lambda: Scene.single("hexagon", "red"), "hexagon"),
    (lambda: Scene.single("circle", "orange"), "orange"),
    (lambda: Scene.single("circle", "red", "huge"), "huge"),
    (lambda: Scene.single("circle", "red", "big", "corner"), "corner"),
    (lambda: Scene.single("circle", "red", "big", "middle", "grey"), "grey"),
])
def test_scene_refuses_what_the_world_does_not_hold(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------------------------------------
# Tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def test_every_grammar_word_is_one_token(tokenizer):
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    seen = set()
    for word in all_words():
        ids = tokenizer(word).input_ids
        assert len(ids) == 3 and ids[0] == start and ids[-1] == end, (word, tokenizer.convert_ids_to_tokens(ids))
        assert tokenizer.convert_ids_to_tokens(ids[1]) == word + "</w>"
        seen.add(ids[1])
    assert len(seen) == len(set(all_words()))
    text = "a photo of a big red circle on the left and a square on the right on a black background"
    assert len(tokenizer(text).input_ids) == len(text.split()) + 2


def test_tokenizer_pads_with_the_end_token(tokenizer):
    assert tokenizer.model_max_length == 77
    assert tokenizer.pad_token == "<|endoftext|>" == tokenizer.eos_token
    encoded = tokenizer("an image of a circle", padding="max_length", max_length=77)
    assert len(encoded.input_ids) == 77
    assert encoded.input_ids[6:] == [tokenizer.eos_token_id] * 71
    assert encoded.attention_mask == [1] * 7 + [0] * 70


def test_unknown_text_still_tokenizes(tokenizer):
    ids = tokenizer("a zebra").input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[1:-1] == ["a</w>", "z", "e", "b", "r", "a</w>"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a zebra"
    assert tokenizer.decode(tokenizer("A Big Circle!").input_ids, skip_special_tokens=True) == "a big circle !"


@pytest.mark.parametrize("position,offset", [("left", (2, 0)), ("top", (0, 2)), ("middle", (0, 3)), ("right", (-2, 0))])
def test_an_offset_beyond_the_jitter_is_refused(position, offset):
    with pytest.raises(ValueError, match="JITTER"):
        Thing("circle", "red", "small", position, offset)


# ---------------------------------------------------------------------------------------------------
# Every prompt the grammar writes


def test_world_prompts_are_every_caption_the_sampler_can_write():
    from timelab.tinyworld.captions import world_prompts

    prompts = world_prompts()
    assert len(prompts) == len(set(prompts)) == 4 * 6 * 3 * 6 * 3 + 12 * 5 * 6**2 * 3**2 * 3
    assert world_prompts(1) == [p for p in prompts if " and " not in p]
    known = set(prompts)
    rng = np.random.default_rng(7)
    written = set()
    for _ in range(3000):
        _, text = sample_example(rng)
        for prefix in sorted(spec.PREFIXES, key=len, reverse=True):
            if prefix and text.startswith(prefix):
                text = text[len(prefix):]
                break
        if text:
            written.add(text)
    assert written <= known, sorted(written - known)[:5]
    for prompt in prompts[::997]:  # every stated attribute reads back
        description = describe(prompt)
        assert 1 <= len(description.objects) <= 2 and all(o["kind"] in spec.KINDS for o in description.objects)
    with pytest.raises(ValueError, match="one or two"):
        world_prompts(3)


def test_binding_twins_exchange_one_attribute_stated_for_both_and_keep_the_words(samples):
    rng = np.random.default_rng(7)
    judge, made = OracleJudge(), 0
    for scene, text in samples[:3000]:
        twin = binding_twin(scene, text, rng)
        if len(scene.objects) == 1 or not text:
            assert twin is None
            continue
        a, b = scene.objects
        words = text.split()
        # Independent reading of "stated for both and different": both objects' values are words of the text.
        possible = [attr for attr in ("colour", "size") if getattr(a, attr) != getattr(b, attr)
                    and words.count(getattr(a, attr)) == 1 and words.count(getattr(b, attr)) == 1]
        possible += ["position"] if "left" in words or "top" in words else []
        if twin is None:
            assert possible == [], (text, possible)
            continue
        made += 1
        twin_scene, twin_text = twin
        changed = [attr for attr in ("kind", "colour", "size", "position")
                   if getattr(twin_scene.objects[0], attr) != getattr(a, attr)]
        assert len(changed) == 1 and changed[0] in possible, (text, twin_text)
        attr = changed[0]
        assert (getattr(twin_scene.objects[0], attr), getattr(twin_scene.objects[1], attr)) == \
            (getattr(b, attr), getattr(a, attr))
        assert twin_scene.background == scene.background
        assert sorted(twin_text.split()) == sorted(words) and twin_text != text
        record = judge.read_one(render(twin_scene))
        assert shows(record, twin_text) and not shows(record, text), (text, twin_text)
    assert made > 300


def test_binding_twin_of_a_hand_written_caption():
    scene = Scene((Thing("circle", "red", "big", "left"), Thing("square", "green", "small", "right")), "black")
    twin = binding_twin(scene, "a photo of a square on the right and a red circle on the left", np.random.default_rng(0))
    assert twin is not None
    assert twin[1] == "a photo of a square on the left and a red circle on the right"
    assert [(t.kind, t.position) for t in twin[0].objects] == [("circle", "right"), ("square", "left")]
    # Colour is stated for one object only: exchanging it would change the words, so there is no twin.
    assert binding_twin(scene, "a red circle and a square", np.random.default_rng(0)) is None
    with pytest.raises(ValueError, match="is not a caption the grammar writes"):
        binding_twin(scene, "a blue circle and a square", np.random.default_rng(0))
