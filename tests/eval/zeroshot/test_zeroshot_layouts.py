"""Each of the nine dataset layouts is read from a small fake copy: class count, label order, samples."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.eval.zeroshot.datasets import (
    DATASETS,
    find_spec,
    read_dataset,
    read_image_folder,
    read_jsonl_set,
    split_camel,
    sun_readable,
)
from clipdpo_cli.eval.zeroshot.resources import choose_prompts
from clipdpo_cli.io.errors import InputError, UsageError

EXPECTED_COUNTS = {
    "cars": 196,
    "pets": 37,
    "flowers": 102,
    "imagenet": 1000,
    "food101": 101,
    "eurosat": 10,
    "caltech101": 101,  # BACKGROUND_Google left out, as torchvision does
    "ucf101": 101,
    "sun397": 397,
}


def rel(data):
    return [(data.key(p), label) for p, label in data.samples]


@pytest.mark.parametrize("key", list(EXPECTED_COUNTS))
def test_layout_class_count_label_order_and_samples(nine_root, key):
    root, expected = nine_root
    spec = find_spec(key)
    data = read_dataset(spec, str(root), "test")
    assert data.n_classes == EXPECTED_COUNTS[key] == spec.n_classes
    assert rel(data) == expected[key]["samples"]
    if "classes" in expected[key]:
        assert data.classes == expected[key]["classes"]


def test_registry_is_table3_order_and_aliases():
    assert [s.title for s in DATASETS] == [
        "StanfordCars", "OxfordPets", "OxfordFlowers", "Imagenet", "Food-101",
        "Eurosat", "Caltech-101", "UCF-101", "SUN397",
    ]  # fmt: skip
    assert find_spec("StanfordCars").key == "cars"
    assert find_spec("oxford-iiit-pet").key == "pets"
    assert find_spec("Food-101").key == "food101"
    assert find_spec("SUN_397").key == "sun397"
    with pytest.raises(UsageError, match="unknown dataset 'mnist'"):
        find_spec("mnist")


def test_layout_can_be_given_directly(nine_root):
    root, expected = nine_root
    data = read_dataset(find_spec("food101"), str(root / "food-101"))
    assert rel(data) == expected["food101"]["samples"]


def test_train_splits(nine_root):
    root, expected = nine_root
    cars = read_dataset(find_spec("cars"), str(root), "train")
    assert rel(cars) == expected["cars"]["train"]
    food = read_dataset(find_spec("food101"), str(root), "train")
    assert rel(food) == [("images/dish_001/11.jpg", 1)]
    flowers = read_dataset(find_spec("flowers"), str(root), "val")
    assert rel(flowers) == [("jpg/image_00003.jpg", 4)]


def test_readable_names_from_the_datasets_own_files(nine_root, no_clip_benchmark):
    root, expected = nine_root
    keys = [key for key in EXPECTED_COUNTS if key != "flowers"]
    names = {key: choose_prompts(read_dataset(find_spec(key), str(root)), find_spec(key)) for key in keys}
    assert names["cars"].classnames[0] == "Maker001 Model1 Sedan 2012"
    assert names["cars"].classnames_source == "cars_meta.mat"
    assert names["pets"].classnames == expected["pets"]["readable"]
    assert names["pets"].classnames[0] == "Cat Breed A0"
    assert names["food101"].classnames[100] == "Dish number 100"  # meta/labels.txt
    assert names["eurosat"].classnames[0] == "Alpha Crop"
    assert names["eurosat"].classnames[7] == "Hotel Industrial Zone"
    assert names["caltech101"].classnames[:3] == ["Upper one", "Upper two", "thing 000"]
    assert names["ucf101"].classnames[0] == "Action000 Move"
    sun = names["sun397"]
    assert sun.classnames[0] == "aplace 0 indoor"
    # ImageNet names come from open_clip, in label (sorted wnid) order
    from open_clip import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    assert names["imagenet"].classnames == list(IMAGENET_CLASSNAMES)
    assert names["imagenet"].templates[0] == OPENAI_IMAGENET_TEMPLATES[0]("{c}")
    assert len(names["imagenet"].templates) == len(OPENAI_IMAGENET_TEMPLATES)
    # no package templates for the others: clipdpo's generic ones
    assert names["food101"].templates_source == "clipdpo generic templates"
    assert all("{c}" in t for t in names["food101"].templates)


def test_flowers_without_names_says_which_file_to_pass(nine_root, no_clip_benchmark):
    root, _ = nine_root
    data = read_dataset(find_spec("flowers"), str(root))
    assert data.classnames is None
    with pytest.raises(InputError) as err:
        choose_prompts(data, find_spec("flowers"))
    message = str(err.value)
    assert "--classnames FILE" in message and "102 lines" in message
    assert "clip_benchmark/datasets/en_classnames.json" in message and "'flowers'" in message


def test_clip_benchmark_names_and_templates_read_at_run_time(nine_root, fake_cb):
    root, _ = nine_root
    fake_cb(
        {
            "flowers": [f"fake flower {i}" for i in range(102)],
            "caltech101": ["fake background", *(f"fake thing {i}" for i in range(101))],
            "eurosat": [f"land {i}" for i in range(9)],  # wrong length: ignored
        },
        {"flowers": ["a photo of a {c}, a fake flower."], "eurosat": ["satellite {c}"]},
    )
    flowers = choose_prompts(read_dataset(find_spec("flowers"), str(root)), find_spec("flowers"))
    assert flowers.classnames[101] == "fake flower 101"
    assert flowers.classnames_source.startswith("clip-benchmark")
    assert flowers.templates == ["a photo of a {c}, a fake flower."]
    caltech = choose_prompts(read_dataset(find_spec("caltech101"), str(root)), find_spec("caltech101"))
    assert caltech.classnames[0] == "fake thing 0"  # its extra first class (background) is dropped
    eurosat = choose_prompts(read_dataset(find_spec("eurosat"), str(root)), find_spec("eurosat"))
    assert eurosat.classnames_source == "folder names"
    assert eurosat.templates == ["satellite {c}"]


def test_classnames_and_templates_files(nine_root, tmp_path, fake_cb):
    root, _ = nine_root
    fake_cb({"flowers": [f"pkg {i}" for i in range(102)]}, {})
    data = read_dataset(find_spec("flowers"), str(root))
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"user flower {i}" for i in range(102)) + "\n")
    templates = tmp_path / "t.txt"
    templates.write_text("# comment\n\na {} in bloom\nthe {c}.\n")
    prompts = choose_prompts(data, find_spec("flowers"), str(names), str(templates))
    assert prompts.classnames[5] == "user flower 5"  # the user's file wins over the package
    assert prompts.templates == ["a {c} in bloom", "the {c}."]
    names.write_text("only\ntwo\n")
    with pytest.raises(InputError, match="2 class names for OxfordFlowers, which has 102 classes"):
        choose_prompts(data, find_spec("flowers"), str(names))
    templates.write_text("no placeholder\n")
    with pytest.raises(InputError, match="line 1: a template needs a"):
        choose_prompts(data, find_spec("flowers"), None, str(templates))


def test_missing_layout_names_the_expected_files(tmp_path):
    with pytest.raises(InputError, match=r"food-101/meta/classes.txt not found.*meta/test.json"):
        read_dataset(find_spec("food101"), str(tmp_path))
    with pytest.raises(InputError, match="cars_meta.mat"):
        read_dataset(find_spec("cars"), str(tmp_path))


def test_ucf_reports_videos_without_a_frame(nine_root):
    root, expected = nine_root
    data = read_dataset(find_spec("ucf101"), str(root))
    assert any("1 videos of testlist01.txt have no frame" in n for n in data.notes)


def test_image_folder_and_mapping_file(tmp_path):
    from tests.eval.zeroshot.zeroshot_fakes import put_image

    for c in ("zebra_crossing", "apple", "Banana"):
        put_image(tmp_path / "set" / c / "a.png")
        put_image(tmp_path / "set" / c / "sub" / "b.jpg")
    data = read_image_folder(str(tmp_path / "set"))
    assert data.name == "set"
    assert data.classes == ["Banana", "apple", "zebra_crossing"]
    assert rel(data) == [
        ("Banana/a.png", 0), ("Banana/sub/b.jpg", 0), ("apple/a.png", 1), ("apple/sub/b.jpg", 1),
        ("zebra_crossing/a.png", 2), ("zebra_crossing/sub/b.jpg", 2),
    ]  # fmt: skip
    mapping = tmp_path / "names.tsv"
    mapping.write_text("apple\tgreen apple\nBanana\tripe banana\nzebra_crossing\tpedestrian crossing\n")
    prompts = choose_prompts(data, None, str(mapping))
    assert prompts.classnames == ["ripe banana", "green apple", "pedestrian crossing"]
    assert choose_prompts(data).classnames == ["Banana", "apple", "zebra crossing"]


def test_jsonl_set_image_root_from_the_environment(tmp_path, monkeypatch):
    listing = tmp_path / "pets.jsonl"
    listing.write_text('{"image": "a.jpg", "label": "dog"}\n')
    monkeypatch.delenv("CLIPDPO_IMAGE_ROOT", raising=False)
    assert read_jsonl_set(str(listing)).samples == [(str(tmp_path / "a.jpg"), 0)]  # the file's folder
    monkeypatch.setenv("CLIPDPO_IMAGE_ROOT", "/pool")
    assert read_jsonl_set(str(listing)).samples == [("/pool/a.jpg", 0)]
    assert read_jsonl_set(str(listing), image_root="/data").samples == [("/data/a.jpg", 0)]  # the option wins


def test_jsonl_sets(tmp_path):
    good = tmp_path / "pets.jsonl"
    good.write_text(
        "\n".join(json.dumps(r) for r in [
            {"image": "a.jpg", "label": "dog"}, {"image": "/abs/b.jpg", "label": "cat"},
            {"image": "c.jpg", "label": "dog"},
        ]) + "\n"
    )  # fmt: skip
    data = read_jsonl_set(str(good), image_root="/data")
    assert data.classes == ["cat", "dog"]
    assert data.samples == [("/data/a.jpg", 1), ("/abs/b.jpg", 0), ("/data/c.jpg", 1)]
    indexed = tmp_path / "idx.jsonl"
    indexed.write_text('{"image": "a.jpg", "label": 2}\n{"image": "b.jpg", "label": 0}\n')
    data = read_jsonl_set(str(indexed))
    assert data.n_classes == 3 and data.classnames is None
    with pytest.raises(InputError, match="pass --classnames FILE"):
        choose_prompts(data)
    names = tmp_path / "n.txt"
    names.write_text("x\ny\nz\n")
    assert choose_prompts(data, None, str(names)).classnames == ["x", "y", "z"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "label": 1.5}\n')
    with pytest.raises(InputError, match="line 1: field 'label'"):
        read_jsonl_set(str(bad))


def test_name_helpers():
    assert split_camel("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert split_camel("HerbaceousVegetation") == "Herbaceous Vegetation"
    assert split_camel("YoYo") == "Yo Yo"
    assert split_camel("PlayingDaf") == "Playing Daf"
    assert sun_readable("apartment_building/outdoor") == "apartment building outdoor"


def test_empty_class_folders_are_left_out_with_one_note(tmp_path):
    """An empty class folder is no class (with few classes it would make top-5 trivially 100%)."""
    from tests.conftest import run_in_process
    from tests.eval.zeroshot.zeroshot_fakes import put_image

    for c in ("apple", "banana", "cherry"):
        put_image(tmp_path / "set" / c / "a.png")
    for c in ("durian", "elderberry"):
        (tmp_path / "set" / c / "sub").mkdir(parents=True)
    (tmp_path / "set" / "elderberry" / "notes.txt").write_text("no image here")
    data = read_image_folder(str(tmp_path / "set"))
    assert data.classes == ["apple", "banana", "cherry"] and data.n_classes == 3
    assert rel(data) == [("apple/a.png", 0), ("banana/a.png", 1), ("cherry/a.png", 2)]
    note = "set: 2 empty class folder(s) left out (no images, so not classes): durian, elderberry"
    assert data.notes == [note]
    proc = run_in_process("eval-zeroshot", str(tmp_path / "set"), "--baseline", "none")
    notes = [line for line in proc.stderr.splitlines() if "empty class folder" in line]
    assert notes == [f"clipdpo eval-zeroshot: {note}"]  # one note for the dataset
    assert "set: 3 images, 3 classes;" in proc.stderr


def test_empty_class_folder_of_a_named_benchmark_is_kept_with_a_note(nine_root, tmp_path):
    """The nine benchmarks' class lists are fixed (names looked up by class count): kept, but said."""
    import shutil

    root, _ = nine_root
    copy = tmp_path / "root"
    shutil.copytree(root / "eurosat", copy / "eurosat")
    (copy / "eurosat" / "2750" / "AAEmpty").mkdir()
    data = read_dataset(find_spec("eurosat"), str(copy))
    assert data.classes[0] == "AAEmpty"
    assert [n for n in data.notes if "without images" in n] == [
        "eurosat: 1 class folder(s) without images, kept (benchmark classes): AAEmpty"
    ]


def test_mat_files_one_annotation_and_unreadable_ones(tmp_path):
    """scipy's squeeze_me turns a one-element array into a scalar: one annotation is still one sample. A
    broken, MAT 7.3 (HDF5) or variable-less .mat file is one clear InputError naming the file."""
    import struct

    from tests.eval.zeroshot.zeroshot_fakes import fake_cars, write_mat

    expected = fake_cars(tmp_path)
    base = tmp_path / "stanford_cars"
    write_mat(
        str(base / "cars_test_annos_withlabels.mat"), {"annotations": [{"class": 9, "fname": "00001.jpg"}]}
    )
    assert rel(read_dataset(find_spec("cars"), str(tmp_path))) == [("cars_test/00001.jpg", 8)]
    write_mat(str(base / "cars_test_annos_withlabels.mat"), {"annotations": [{"klass": 9, "fname": "a.jpg"}]})
    with pytest.raises(InputError, match="annotations need 'fname' and 'class' fields"):
        read_dataset(find_spec("cars"), str(tmp_path))
    meta = base / "devkit" / "cars_meta.mat"
    write_mat(str(meta), {"names": expected["classes"]})
    with pytest.raises(InputError, match=r"cars_meta.mat: no variable 'class_names' \(found: names\)"):
        read_dataset(find_spec("cars"), str(tmp_path))
    meta.write_bytes(b"x" * 200)
    with pytest.raises(InputError, match="cars_meta.mat: not a readable MAT file"):
        read_dataset(find_spec("cars"), str(tmp_path))
    meta.write_bytes(b"MATLAB 7.3".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0200) + b"IM" + b"\0" * 400)
    with pytest.raises(InputError, match=r"cars_meta.mat: MAT 7.3 \(HDF5\) files are not supported"):
        read_dataset(find_spec("cars"), str(tmp_path))
