"""Benchmark file formats: landmark CSV, insightface .bin, LFW pairs.txt, IJB-B/C meta files."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brownface.covariates.landmarks import HEADER, read_landmarks, write_landmarks
from brownface.errors import UserError
from brownface.evaluate.binfile import read_bin, read_bin_encoded, write_bin
from brownface.evaluate.ijb import IJBMeta, meta_paths, read_ijb, write_ijb
from brownface.evaluate.lfw import Pair, image_relpath, pair_paths, read_pairs, write_pairs

# ---------------------------------------------------------------- helpers


def _encoded(seed: int, fmt: str = "PNG", size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size + 2, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _binstring(data: bytes) -> bytes:
    """Python-2 BINSTRING opcode (a py2 ``str``), which Python 3 never writes itself."""
    return b"T" + struct.pack("<i", len(data)) + data


def _py2_numpy_array(data: bytes) -> bytes:
    """Opcodes a Python-2 NumPy 1.x writes for a 1-D uint8 array holding ``data``."""
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        b"cnumpy\nndarray\n" + b"K\x00\x85" + _binstring(b"b") + b"\x87R"
        b"(K\x01" + b"J" + struct.pack("<i", len(data)) + b"\x85"
        b"cnumpy\ndtype\n" + _binstring(b"u1") + b"K\x00K\x01\x87R"
        b"(K\x03" + _binstring(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89" + _binstring(data) + b"tb"
    )


def _py2_pickle(entries: list[bytes], issame: list[bool], as_numpy: bool) -> bytes:
    """A protocol-2 pickle of ``(entries, issame)`` laid out as Python 2 writes it."""
    body = b"".join(_py2_numpy_array(e) if as_numpy else _binstring(e) for e in entries)
    labels = b"".join(b"\x88" if x else b"\x89" for x in issame)
    return b"\x80\x02(](" + body + b"e](" + labels + b"et."


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.target}",))


# ---------------------------------------------------------------- landmarks


def test_landmarks_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = {f"id{i}/img_{i}.png": rng.uniform(0, 112, size=(5, 2)) for i in (3, 1, 2)}
    rows["a/-0.png"] = np.full((5, 2), -0.0001)
    path = tmp_path / "lmk.csv"
    write_landmarks(path, rows)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(HEADER)
    assert [line.split(",")[0] for line in lines[1:]] == sorted(rows)
    assert "-0.000" not in text
    back = read_landmarks(path)
    assert list(back) == sorted(rows)
    for key, points in rows.items():
        assert back[key].dtype == np.float32 and back[key].shape == (5, 2)
        np.testing.assert_allclose(back[key], points, atol=6e-4)
    write_landmarks(tmp_path / "again.csv", back)
    assert (tmp_path / "again.csv").read_text() == text


@pytest.mark.parametrize(
    ("content", "part"),
    [
        ("path,x,y\na.png,1,2\n", "line 1: expected header"),
        ("", "got 'an empty file'"),
        (",".join(HEADER) + "\na.png" + ",1" * 9 + ",abc\n", "mouth_right_y is not a number"),
        (",".join(HEADER) + "\na.png" + ",1" * 9 + "\n", "expected 11 comma-separated"),
        (",".join(HEADER) + "\na.png" + ",1" * 10 + "\n\na.png" + ",2" * 10 + "\n", "line 4"),
        (",".join(HEADER) + "\n/abs.png" + ",1" * 10 + "\n", "must be relative"),
        (",".join(HEADER) + "\na.png" + ",nan" * 10 + "\n", "not finite"),
    ],
)
def test_landmarks_bad_files(tmp_path: Path, content: str, part: str) -> None:
    path = tmp_path / "lmk.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=part):
        read_landmarks(path)


def test_landmarks_duplicate_names_first_line(tmp_path: Path) -> None:
    path = tmp_path / "lmk.csv"
    path.write_text(",".join(HEADER) + "\na.png" + ",1" * 10 + "\na.png" + ",2" * 10 + "\n")
    with pytest.raises(UserError, match=r"line 3: duplicate image path 'a.png' \(first on line 2"):
        read_landmarks(path)


# ---------------------------------------------------------------- .bin


def _check_set(path: Path, entries: list[bytes], issame: list[bool]) -> None:
    data = read_bin(path)
    assert len(data) == len(issame)
    assert data.issame.dtype == bool and data.issame.tolist() == issame
    for img, raw in zip(data.images, entries, strict=True):
        assert img.dtype == np.uint8 and img.shape == (8, 10, 3)
        np.testing.assert_array_equal(img, _pixels(raw))
    assert read_bin_encoded(path).images == entries


def test_bin_round_trip_bytes(tmp_path: Path) -> None:
    entries = [_encoded(i, "PNG" if i % 2 else "JPEG") for i in range(6)]
    issame = [True, False, True]
    path = tmp_path / "lfw.bin"
    write_bin(path, entries, issame)
    _check_set(path, entries, issame)
    with pytest.raises(ValueError):
        write_bin(tmp_path / "bad.bin", entries[:5], issame)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_bin_bytearray_and_ndarray_entries(tmp_path: Path, protocol: int) -> None:
    entries = [_encoded(i) for i in range(6)]
    stored = [
        bytearray(entries[0]),
        np.frombuffer(entries[1], dtype=np.uint8),
        entries[2],
        np.frombuffer(entries[3], dtype=np.uint8).copy(),
        np.frombuffer(entries[4], dtype=np.uint8).reshape(-1, 1),  # what cv2.imencode returns
        np.frombuffer(entries[5], dtype=np.uint8).reshape(1, -1).copy(),
    ]
    path = tmp_path / "mixed.bin"
    path.write_bytes(pickle.dumps((stored, [np.bool_(False), True, False]), protocol=protocol))
    _check_set(path, entries, [False, True, False])


@pytest.mark.parametrize("as_numpy", [False, True])
def test_bin_python2_pickle(tmp_path: Path, as_numpy: bool) -> None:
    entries = [_encoded(i, "JPEG") for i in range(4)]
    path = tmp_path / "py2.bin"
    path.write_bytes(_py2_pickle(entries, [True, False], as_numpy=as_numpy))
    with pytest.raises(UnicodeDecodeError):  # the quirk the reader works around
        pickle.loads(path.read_bytes())
    _check_set(path, entries, [True, False])


def test_bin_malicious_pickle_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([_Evil(target), b"x"], [True]), protocol=2))
    with pytest.raises(UserError, match=r"refusing to unpickle (posix|nt)\.system"):
        read_bin(path)
    with pytest.raises(UserError, match="not an image list"):
        read_bin_encoded(path)
    assert not target.exists()


@pytest.mark.parametrize(
    ("obj", "part"),
    [
        (
            (b"a", b"b", [True]),
            "expected a pickled \\(images, issame\\) pair, got tuple of length 3",
        ),
        ({"images": []}, "expected a pickled \\(images, issame\\) pair, got dict"),
        (([b"a", b"b", b"c"], [True]), "expected 2 images per pair"),
        (([b"a", 3], [True]), "image 1 must be encoded bytes"),
        (([b"a", np.zeros((2, 2), np.float32)], [True]), "image 1 must be encoded bytes"),
        (([b"a", b"b"], [2]), "issame\\[0\\] must be a bool"),
        (({"a": 1}, [True]), "images must be a list"),
    ],
)
def test_bin_bad_structure(tmp_path: Path, obj: object, part: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UserError, match=part):
        read_bin_encoded(path)


def test_bin_undecodable_image_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    write_bin(path, [_encoded(0), b"not an image"], [True])
    assert len(read_bin_encoded(path)) == 1
    with pytest.raises(UserError, match="image 1: not a decodable"):
        read_bin(path)
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable .bin"):
        read_bin(path)
    with pytest.raises(UserError, match="not found"):
        read_bin(tmp_path / "missing.bin")


# ---------------------------------------------------------------- LFW


def _folds(n_folds: int = 10, n: int = 3) -> list:
    folds = []
    for f in range(n_folds):
        matched = [(f"Person_{f}_{k}", 1, k + 2) for k in range(n)]
        mismatched = [(f"Person_{f}_{k}", k + 1, f"Other_{f}_{k}", 1) for k in range(n)]
        folds.append((matched, mismatched))
    return folds


def test_pairs_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    folds = _folds()
    write_pairs(path, folds)
    lines = path.read_text().splitlines()
    assert lines[0] == "10\t3"
    assert lines[1] == "Person_0_0\t1\t2"
    assert lines[4] == "Person_0_0\t1\tOther_0_0\t1"
    assert len(lines) == 61
    pairs = read_pairs(path)
    assert len(pairs) == 60
    assert pairs[0] == Pair("Person_0_0", 1, "Person_0_0", 2, True, 0)
    assert pairs[5] == Pair("Person_0_2", 3, "Other_0_2", 1, False, 0)
    assert [p.fold for p in pairs] == [f for f in range(10) for _ in range(6)]
    assert [p.same for p in pairs[:6]] == [True] * 3 + [False] * 3
    rebuilt = [
        (
            [(p.name1, p.index1, p.index2) for p in pairs if p.fold == f and p.same],
            [(p.name1, p.index1, p.name2, p.index2) for p in pairs if p.fold == f and not p.same],
        )
        for f in range(10)
    ]
    write_pairs(tmp_path / "again.txt", rebuilt)
    assert (tmp_path / "again.txt").read_text() == path.read_text()
    with pytest.raises(ValueError):
        write_pairs(tmp_path / "x.txt", [folds[0], (folds[1][0][:2], folds[1][1])])


def test_pairs_view1_header(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("2\nA\t1\t2\nB\t1\t3\nA\t1\tB\t2\nC\t1\tD\t1\n")
    pairs = read_pairs(path)
    assert [p.same for p in pairs] == [True, True, False, False]
    assert {p.fold for p in pairs} == {0}


def _edit(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("line_no", "text", "part"),
    [
        (7, "A\t1\tB\t2\tC", "line 7: expected 4 tab-separated fields"),
        (2, "A\t1\tB\t2", "line 2: expected 3 tab-separated fields \\(matched pair 1 of fold 1"),
        (8, "A\t1\tB\t2", "line 8: expected 3 tab-separated fields \\(matched pair 1 of fold 2"),
        (5, "A\t1\t2", "line 5: expected 4 tab-separated fields \\(mismatched pair 1 of fold 1"),
        (1, "10\t4", "header says 10 folds x 2 x 4 pairs = 80 lines"),
        (1, "10 x", "header n_per_kind must be a positive integer"),
        (1, "10\t3\t1", "line 1: expected header"),
        (3, "A\t1\tx", "line 3: image index must be a positive integer"),
        (3, "A\t0\t2", "line 3: image index"),
    ],
)
def test_pairs_bad_files(tmp_path: Path, line_no: int, text: str, part: str) -> None:
    path = tmp_path / "pairs.txt"
    write_pairs(path, _folds())
    _edit(path, line_no, text)
    with pytest.raises(UserError, match=part):
        read_pairs(path)


def test_pair_paths(tmp_path: Path) -> None:
    assert image_relpath("Abel_Pacheco", 4) == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    pairs = [Pair("A_B", 1, "A_B", 2, True, 0), Pair("A_B", 1, "C_D", 12, False, 0)]
    root = tmp_path / "lfw"
    for rel in ("A_B/A_B_0001.jpg", "A_B/A_B_0002.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_encoded(0, "JPEG"))
    with pytest.raises(UserError, match=r"1 image\(s\) named in pairs.txt are missing.*C_D_0012"):
        pair_paths(root, pairs)
    (root / "C_D").mkdir()
    (root / "C_D/C_D_0012.jpg").write_bytes(b"")
    paths = pair_paths(root, pairs)
    assert paths[1] == (root / "A_B/A_B_0001.jpg", root / "C_D/C_D_0012.jpg")
    with pytest.raises(UserError, match="LFW image folder not found"):
        pair_paths(tmp_path / "nope", pairs)


# ---------------------------------------------------------------- IJB


def _meta() -> IJBMeta:
    rng = np.random.default_rng(1)
    m = 6
    return IJBMeta(
        image_names=[f"{i + 1}.jpg" for i in range(m)],
        template_ids=np.array([1, 1, 2, 2, 3, 3], np.int64),
        media_ids=np.array([10, 10, 11, 12, 13, 14], np.int64),
        landmarks=rng.uniform(0, 200, size=(m, 5, 2)).astype(np.float32),
        scores=rng.uniform(0.5, 1, size=m).astype(np.float32),
        t1=np.array([1, 1, 2], np.int64),
        t2=np.array([2, 3, 3], np.int64),
        labels=np.array([1, 0, 0], np.int64),
    )


@pytest.mark.parametrize("prefix", ["ijbc", "ijbb"])
def test_ijb_round_trip(tmp_path: Path, prefix: str) -> None:
    meta = _meta()
    write_ijb(tmp_path, meta, prefix)
    faces, pairs, lmks = meta_paths(tmp_path, prefix)
    assert faces.name == f"{prefix}_face_tid_mid.txt"
    assert faces.read_text().splitlines()[0] == "1.jpg 1 10"
    assert pairs.read_text().splitlines()[1] == "1 3 0"
    first = lmks.read_text().splitlines()[0].split(" ")
    assert len(first) == 12 and first[0] == "1.jpg" and len(first[1].split(".")[1]) == 2
    back = read_ijb(tmp_path, prefix)
    assert back.image_names == meta.image_names
    for name in ("template_ids", "media_ids", "t1", "t2", "labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(meta, name))
    assert back.landmarks.dtype == np.float32 and back.landmarks.shape == (6, 5, 2)
    np.testing.assert_allclose(back.landmarks, meta.landmarks, atol=5.1e-3)
    np.testing.assert_allclose(back.scores, meta.scores, atol=1e-6)
    with pytest.raises(UserError, match="prefix"):
        read_ijb(tmp_path, "ijba")


def test_ijb_misaligned_rows_refused(tmp_path: Path) -> None:
    write_ijb(tmp_path, _meta())
    _, _, lmks = meta_paths(tmp_path)
    lines = lmks.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    lmks.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"row 3: image '4.jpg' but ijbc_face_tid_mid.txt row 3"):
        read_ijb(tmp_path)
    lmks.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(UserError, match="has 5 rows but ijbc_face_tid_mid.txt has 6"):
        read_ijb(tmp_path)


@pytest.mark.parametrize(
    ("which", "line_no", "text", "part"),
    [
        (0, 2, "2.jpg 1 10 7", "line 2: expected 3 space-separated fields"),
        (0, 1, "1.jpg 1 10 7", "line 1: expected 3 space-separated fields"),
        (0, 3, "3.jpg 2", "line 3: expected 3"),
        (0, 4, "4.jpg two 12", "line 4: template_id must be an integer"),
        (1, 2, "1 3 2", "row 2: label must be 0 or 1"),
        (1, 3, "2 9 0", "row 3: template 9 has no images"),
        (2, 5, "5.jpg" + " 1.0" * 10 + " nan", "line 5: score is not finite"),
        (2, 5, "5.jpg" + " 1.0" * 9 + " 0.5", "line 5: expected 12"),
    ],
)
def test_ijb_bad_files(tmp_path: Path, which: int, line_no: int, text: str, part: str) -> None:
    write_ijb(tmp_path, _meta())
    _edit(meta_paths(tmp_path)[which], line_no, text)
    with pytest.raises(UserError, match=part):
        read_ijb(tmp_path)


def test_ijb_missing_file(tmp_path: Path) -> None:
    write_ijb(tmp_path, _meta())
    meta_paths(tmp_path)[1].unlink()
    with pytest.raises(UserError, match="ijbc_template_pair_label.txt: IJB meta file not found"):
        read_ijb(tmp_path)
