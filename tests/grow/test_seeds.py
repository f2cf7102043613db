"""Seed files for segmentation from seeds: every format read to the exact pixel, every bad input one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.grow.seeds import SeedSet, parse_classes, read_seeds

W, H = 20, 10  # every test image: 20 px wide, 10 px high


def images(*names: str) -> list[Path]:
    return [Path("photos") / n for n in names]


def sizes(n: int) -> list[tuple[int, int]]:
    return [(W, H)] * n


def write_png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    im = Image.fromarray(arr)
    if mode == "P":
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)  # an L image with a palette becomes P
    im.save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def read_one(source: Path, classes=None) -> SeedSet:
    return read_seeds(source, images("a.jpg"), sizes(1), classes)


def raises(source: Path | str, *phrases: str, names=("a.jpg",), classes=None, size=(W, H)) -> str:
    """Read `source` expecting one CnnkitError line that names the file and holds each phrase."""
    with pytest.raises(CnnkitError) as info:
        read_seeds(source, images(*names), [size] * len(names), classes)
    message = str(info.value)
    assert "\n" not in message
    assert Path(source).name in message
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- PNG ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,mode", [(np.uint8, None), (np.uint16, None), (np.uint8, "P")])
def test_png_of_class_numbers(tmp_path, dtype, mode):
    arr = np.zeros((H, W), dtype)
    arr[2, 3], arr[7, 15], arr[0, 0] = 1, 3, 2
    path = write_png(tmp_path / "a.png", arr, mode)
    assert Image.open(path).mode == {None: "L" if dtype == np.uint8 else "I;16", "P": "P"}[mode]
    seeds = read_one(path)
    m = seeds.maps[0]
    assert m is not None and m.dtype == np.int32 and m.shape == (H, W)
    assert (m[2, 3], m[7, 15], m[0, 0]) == (1, 3, 2) and np.count_nonzero(m) == 3
    assert seeds.classes == ("class1", "class2", "class3")
    assert seeds.counts().tolist() == [[1, 1, 1]]


def test_png_with_classes_given(tmp_path):
    arr = np.zeros((H, W), np.uint8)
    arr[5, 5] = 2
    seeds = read_one(write_png(tmp_path / "a.png", arr), classes=["road", "sky", "car"])
    assert seeds.classes == ("road", "sky", "car") and seeds.maps[0][5, 5] == 2


def test_rgb_png_is_refused_with_the_fix(tmp_path):
    path = write_png(tmp_path / "a.png", np.zeros((H, W, 3), np.uint8))
    raises(path, "RGB", "save the seeds as a one-channel PNG of class numbers 1..C, 0 = unmarked")


def test_png_of_the_wrong_size_names_both_sizes(tmp_path):
    path = write_png(tmp_path / "a.png", np.ones((H, W + 1), np.uint8))
    raises(path, "21x10 px", "a.jpg is 20x10 px")


def test_png_value_above_the_classes_names_the_values(tmp_path):
    arr = np.zeros((H, W), np.uint8)
    arr[0, 0], arr[1, 1] = 1, 4
    raises(write_png(tmp_path / "a.png", arr), "holds the values 1, 4", "2 classes", classes=["road", "sky"])


def test_png_of_255_without_classes_is_refused(tmp_path):
    raises(write_png(tmp_path / "a.png", np.full((H, W), 255, np.uint8)), "value 255 found", "class numbers 1..C")


# --- JSON --------------------------------------------------------------------------------------------------


def test_json_points_discs_and_scribbles(tmp_path):
    path = write_json(tmp_path / "a.json", [
        {"x": 1, "y": 2, "class": "road"},
        {"x": 2.5, "y": 3.4, "class": "sky"},  # rounds to (3, 3): halves go up
        {"x": 10, "y": 5, "class": "car", "radius": 2},
        {"class": "road", "line": [[0, 9], [19, 9]], "width": 1},
        {"class": "sky", "line": [[15, 0], [15, 2]]},  # default width 3: columns 14..16
    ])
    seeds = read_one(path)
    m = seeds.maps[0]
    assert seeds.classes == ("road", "sky", "car")  # order of first appearance
    assert m[2, 1] == 1 and m[3, 3] == 2 and m[3, 2] == 0
    disc = m == 3
    assert disc.sum() == 13 and disc[5, 8] and disc[3, 10] and disc[6, 11] and not disc[4, 8]  # x^2 + y^2 <= 4
    assert (m[9] == 1).all() and (m[8] == 0).all()
    assert (m[0:3, 14:17] == 2).all() and (m[0:3, 13] == 0).all() and (m[0:3, 17] == 0).all()


def test_thin_diagonal_scribble_has_no_gaps(tmp_path):
    path = write_json(tmp_path / "a.json", [{"class": "road", "line": [[0, 0], [19, 9]], "width": 1}])
    m = read_one(path).maps[0]
    assert (m.sum(0) >= 1).all() and m.sum() <= 25 and m[0, 0] == 1 and m[9, 19] == 1
    assert m[0, 19] == 0 and m[9, 0] == 0


def test_json_points_object_with_a_disc(tmp_path):
    path = write_json(tmp_path / "a.json", {"points": [{"x": 4, "y": 4, "class": "road", "radius": 1},
                                                       {"x": 9, "y": 4, "class": "sky"}]})
    m = read_one(path, classes=["road", "sky"]).maps[0]
    assert m[4, 4] == 1 and m[4, 5] == 1 and m[3, 4] == 1 and m[4, 9] == 2 and (m > 0).sum() == 6


@pytest.mark.parametrize("second", [{"x": 4, "y": 4, "class": "sky"}, {"x": 6, "y": 4, "class": "sky", "radius": 2}])
def test_two_classes_on_one_pixel_are_refused(tmp_path, second):
    # regression (user trial): the later entry silently took the pixel, and its class vanished from the mask
    path = write_json(tmp_path / "a.json", [{"x": 4, "y": 4, "class": "road", "radius": 1}, second])
    with pytest.raises(CnnkitError, match="entry 2: class 'sky' marks pixels that another entry seeds"):
        read_one(path, classes=["road", "sky"])


def test_the_same_class_twice_on_a_pixel_is_fine(tmp_path):
    path = write_json(tmp_path / "a.json", [{"x": 4, "y": 4, "class": "road"}, {"x": 4, "y": 4, "class": "road"}])
    assert read_one(path, classes=["road"]).maps[0][4, 4] == 1


def test_folder_wide_json_by_name_and_stem(tmp_path):
    path = write_json(tmp_path / "seeds.json", {"a.jpg": [{"x": 0, "y": 0, "class": "road"}],
                                                "c": {"points": [{"x": 19, "y": 9, "class": "sky"}]}})
    seeds = read_seeds(path, images("a.jpg", "b.jpg", "c.png"), sizes(3))
    assert seeds.classes == ("road", "sky")
    assert seeds.maps[0][0, 0] == 1 and seeds.maps[1] is None and seeds.maps[2][9, 19] == 2
    assert seeds.counts().sum(1).tolist() == [1, 0, 1]


def test_folder_wide_json_key_with_folder_tells_same_names_apart(tmp_path):
    path = write_json(tmp_path / "seeds.json", {"day/a.jpg": [{"x": 1, "y": 1, "class": "road"}]})
    seeds = read_seeds(path, [Path("in/day/a.jpg"), Path("in/night/a.jpg")], sizes(2))
    assert seeds.maps[0][1, 1] == 1 and seeds.maps[1] is None
    raises(write_json(tmp_path / "s2.json", {"a.jpg": []}), "names 2 images", names=("day/a.jpg", "night/a.jpg"))


# --- CSV ---------------------------------------------------------------------------------------------------


def test_csv_points_and_discs(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x, y, class, radius\n3,4,sky,\n10.6,5,road,1\n\n")
    seeds = read_one(path)
    m = seeds.maps[0]
    assert seeds.classes == ("sky", "road")
    assert m[4, 3] == 1 and m[5, 11] == 2 and (m == 2).sum() == 5 and (m == 1).sum() == 1


def test_folder_wide_csv(tmp_path):
    path = tmp_path / "seeds.csv"
    path.write_text("image,x,y,class\na.jpg,1,1,road\nb,2,2,sky\na,3,3,sky\n")
    with pytest.raises(CnnkitError, match="both name image a.jpg"):  # one image under two spellings
        read_seeds(path, images("a.jpg", "b.jpg"), sizes(2))
    path.write_text("image,x,y,class\na.jpg,1,1,road\nb,2,2,sky\na.jpg,3,3,sky\n")
    seeds = read_seeds(path, images("a.jpg", "b.jpg", "c.jpg"), sizes(3), classes=["sky", "road"])
    assert seeds.maps[0][1, 1] == 2 and seeds.maps[0][3, 3] == 1 and seeds.maps[1][2, 2] == 1
    assert seeds.maps[2] is None


# --- folders -----------------------------------------------------------------------------------------------


def test_folder_of_per_image_files(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    arr = np.zeros((H, W), np.uint8)
    arr[1, 2] = 2
    write_png(folder / "a.png", arr)
    write_json(folder / "b.json", [{"x": 5, "y": 6, "class": "road"}])
    (folder / "c_seeds.csv").write_text("x,y,class\n7,8,sky\n")
    (folder / "notes.txt").write_text("not a seed file")
    names = ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
    with pytest.raises(CnnkitError, match="--classes"):  # numbers and names: which number is which name?
        read_seeds(folder, images(*names), sizes(4))
    seeds = read_seeds(folder, images(*names), sizes(4), classes=["road", "sky"])
    assert seeds.maps[0][1, 2] == 2 and seeds.maps[1][6, 5] == 1 and seeds.maps[2][8, 7] == 2
    assert seeds.maps[3] is None


def test_inferred_classes_follow_sorted_files(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_json(folder / "b.json", [{"x": 0, "y": 0, "class": "sky"}, {"x": 1, "y": 0, "class": "road"}])
    write_json(folder / "a.json", [{"x": 0, "y": 0, "class": "road"}])
    seeds = read_seeds(folder, images("a.jpg", "b.jpg"), sizes(2))
    assert seeds.classes == ("road", "sky")
    assert seeds.maps[1][0, 0] == 2 and seeds.maps[1][0, 1] == 1
    given = read_seeds(folder, images("a.jpg", "b.jpg"), sizes(2), classes=("sky", "road", "car"))
    assert given.classes == ("sky", "road", "car") and given.maps[1][0, 0] == 1 and given.maps[0][0, 0] == 2


# --- parse_classes -----------------------------------------------------------------------------------------


def test_parse_classes_text_file_and_csv(tmp_path):
    assert parse_classes("road, sky,car") == ("road", "sky", "car")
    txt = tmp_path / "classes.txt"
    txt.write_text("road\n\nsky\n")
    assert parse_classes(str(txt)) == ("road", "sky")
    table = tmp_path / "classes.csv"
    table.write_text("index,name,r,g,b\n2,car,0,0,255\n0,road,128,0,0\n1,sky,0,128,0\n")
    assert parse_classes(str(table)) == ("road", "sky", "car")


@pytest.mark.parametrize("text,phrase", [("road,,sky", "empty name"), ("road,sky,road", "'road' appears twice"),
                                         ("nowhere.txt", "classes file not found")])
def test_parse_classes_refuses(text, phrase):
    with pytest.raises(CnnkitError, match=phrase):
        parse_classes(text)


def test_parse_classes_refuses_a_repeated_index(tmp_path):
    table = tmp_path / "classes.csv"
    table.write_text("index,name\n0,road\n0,sky\n")
    with pytest.raises(CnnkitError, match="classes.csv: index 0 appears twice"):
        parse_classes(str(table))


# --- errors ------------------------------------------------------------------------------------------------


def test_point_outside_the_image_gives_its_size(tmp_path):
    path = write_json(tmp_path / "a.json", [{"x": 1, "y": 1, "class": "road"}, {"x": 20, "y": 3, "class": "road"}])
    raises(path, "entry 2", "(20, 3) is outside image a.jpg", "20x10 px")
    line = write_json(tmp_path / "b.json", [{"class": "road", "line": [[0, 0], [5, -1]]}])
    raises(line, "entry 1", "(5, -1) is outside")
    csv = tmp_path / "c.csv"
    csv.write_text("x,y,class\n1,1,road\n1,10,road\n")
    raises(csv, "line 3", "(1, 10) is outside", "20x10 px")


def test_unknown_class_suggests_the_closest(tmp_path):
    path = write_json(tmp_path / "a.json", [{"x": 1, "y": 1, "class": "raod"}])
    raises(path, "entry 1", "class 'raod' is not one of the 2 classes", "Did you mean 'road'?",
           classes=["road", "sky"])


@pytest.mark.parametrize("text,phrases", [
    ("x,y\n1,1\n", ["no 'class' column"]),
    ("x,y,label\n1,1,road\n", ["column 'label' is not a seed column", "x,y,class"]),
    ("x,y,class,raduis\n1,1,road,2\n", ["Did you mean 'radius'?"]),
    ("x,y,class,x\n1,1,road,1\n", ["column 'x' appears twice"]),
    ("x,y,class\n1,1,road\none,1,road\n", ["line 3", "x is \"one\", not a finite number"]),
    ("x,y,class\n1,1\n", ["line 2 has 2 values for the 3 columns"]),
    ("x,y,class,radius\n1,1,road,-1\n", ["line 2", "radius -1 is below 0"]),
    ("", ["empty", "header x,y,class"]),
])
def test_bad_csv(tmp_path, text, phrases):
    path = tmp_path / "a.csv"
    path.write_text(text)
    raises(path, *phrases)


@pytest.mark.parametrize("data,phrases", [
    ('[{"x": 1, "y": 1, "class": "road"},]', ["not valid JSON", "line 1"]),
    ('{"a.jpg": [], "a.jpg": []}', ['the key "a.jpg" appears twice']),
    ('{"a": [], "a.jpg": []}', ['"a" and "a.jpg" both name image a.jpg']),
    ('[{"x": 1, "y": 1}]', ["entry 1", 'no "class"']),
    ('[{"x": 1, "y": 1, "class": 2}]', ['"class": 2', "class name (a string)"]),
    ('[{"x": 1, "class": "road"}]', ['no "x" and "y"']),
    ('[{"class": "road", "line": [[1, 1]]}]', ['"line" must be two or more [x, y] points']),
    ('[{"class": "road", "line": [[1, 1], [2, 2]], "width": 0}]', ["width 0 is below 1"]),
    ('[{"x": true, "y": 1, "class": "road"}]', ["x is true, not a finite number"]),
    ('[{"x": 1e999, "y": 1, "class": "road"}]', ["x is Infinity, not a finite number"]),
    ('[{"x": 1, "y": 1, "class": "road"}, {"x": 1, "line": [[1, 1], [2, 2]], "class": "road"}]',
     ["entry 2", 'both "x"/"y" and "line"']),
    ('[[1, 1]]', ["entry 1 is [1, 1], not an object"]),
    ('"road"', ["a JSON str", "list of points"]),
    ('{"a.jpg": 3}', ['"a.jpg" holds a JSON int, not a list of points']),
])
def test_bad_json(tmp_path, data, phrases):
    path = tmp_path / "a.json"
    path.write_text(data)
    raises(path, *phrases)


def test_seed_file_matching_no_image(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_json(folder / "foo.json", [{"x": 1, "y": 1, "class": "road"}])
    message = raises(folder / "foo.json", names=("a.jpg", "b.jpg", "c.jpg"))  # a plain file for 3 images
    assert "holds the seeds of one image, but 3 images are given" in message
    with pytest.raises(CnnkitError) as info:
        read_seeds(folder, images("a.jpg", "b.jpg", "c.jpg"), sizes(3))
    assert str(info.value) == (f"{folder / 'foo.json'}: no image named foo among the 3 images given; rename it to "
                               "an image's name or remove it")
    raises(write_json(tmp_path / "k.json", {"d.jpg": []}), 'no image named d.jpg among the 1 images')
    raises(write_json(tmp_path / "k2.json", {"photo1": []}), "Did you mean 'photo2'?", names=("photo2.jpg",))


def test_an_image_given_twice_in_a_folder(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_json(folder / "a.json", [{"x": 1, "y": 1, "class": "road"}])
    write_json(folder / "a_seeds.json", [{"x": 2, "y": 1, "class": "road"}])
    with pytest.raises(CnnkitError, match="a_seeds.json: image a.jpg already has seeds from .*a.json; keep one"):
        read_seeds(folder, images("a.jpg"), sizes(1))


def test_no_seeds_at_all(tmp_path):
    raises(write_json(tmp_path / "a.json", []), "no seeds at all")
    raises(write_png(tmp_path / "a.png", np.zeros((H, W), np.uint8)), "no seeds at all")
    (tmp_path / "empty").mkdir()
    raises(tmp_path / "empty", "no seed files")
    raises(tmp_path / "missing", "seed source not found")


def test_plain_png_for_several_images(tmp_path):
    raises(write_png(tmp_path / "a.png", np.ones((H, W), np.uint8)), "folder of PNGs", names=("a.jpg", "b.jpg"))


def test_json_keyed_in_a_folder_is_refused(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_json(folder / "a.json", {"a.jpg": [{"x": 1, "y": 1, "class": "road"}]})
    with pytest.raises(CnnkitError, match="a.json: seeds keyed by image name"):
        read_seeds(folder, images("a.jpg"), sizes(1))
