"""Multi-PIE naming: path round trips, camera/flash/expression tables, refusal of bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from brownface.covariates.multipie import (
    ALL_CAMERAS,
    CAMERA_YAW,
    ELEVATED_CAMERAS,
    EXPRESSION_OF,
    EXPRESSIONS,
    FLASH_AZIMUTH,
    FLASH_GROUPS,
    FLASHES,
    HEAD_HEIGHT_CAMERAS,
    RECORDINGS,
    MultiPieImage,
    flash_azimuth,
    parse_relpath,
)
from brownface.errors import UserError


def test_round_trip_every_camera_flash_session_recording() -> None:
    count = 0
    for session, recording in EXPRESSION_OF:
        for camera in ALL_CAMERAS:
            for flash in FLASHES:
                img = MultiPieImage(7, session, recording, camera, flash)
                assert parse_relpath(img.relpath()) == img
                count += 1
    assert count == 11 * 15 * 19


def test_known_example() -> None:
    rel = "session01/multiview/241/01/05_1/241_01_01_051_07.png"
    img = parse_relpath(rel)
    assert img == MultiPieImage(subject=241, session=1, recording=1, camera="05_1", flash=7)
    assert img.expression == "neutral"
    assert img.yaw == 0
    assert img.relpath() == rel
    assert img.relpath("jpg").endswith("241_01_01_051_07.jpg")
    assert img.stem == "241_01_01_051_07"


def test_absolute_and_path_objects(tmp_path: Path) -> None:
    rel = "session04/multiview/001/03/24_0/001_04_03_240_00.png"
    img = parse_relpath(tmp_path / "multipie" / rel)
    assert (img.session, img.recording, img.camera, img.flash) == (4, 3, "24_0", 0)
    assert img.expression == "scream"
    assert parse_relpath("C:\\data\\" + rel.replace("/", "\\")) == img
    assert parse_relpath("foo.jpg/" + rel.replace(".png", ".jpg"), ext="jpg") == img
    assert parse_relpath(rel.replace(".png", ".jpg"), ext=None) == img


def test_tables() -> None:
    assert len(HEAD_HEIGHT_CAMERAS) == 13 and len(ALL_CAMERAS) == 15
    assert CAMERA_YAW["11_0"] == -90
    assert CAMERA_YAW["24_0"] == 90
    assert CAMERA_YAW["05_1"] == 0
    assert CAMERA_YAW["05_0"] == 15
    assert CAMERA_YAW["14_0"] == -15
    assert [CAMERA_YAW[c] for c in HEAD_HEIGHT_CAMERAS] == list(range(-90, 91, 15))
    for cam in ELEVATED_CAMERAS:
        assert cam not in CAMERA_YAW
        assert MultiPieImage(1, 1, 1, cam, 0).yaw is None
    assert EXPRESSIONS == ("neutral", "smile", "surprise", "squint", "disgust", "scream")
    assert set(EXPRESSION_OF.values()) == set(EXPRESSIONS)
    assert EXPRESSION_OF[(1, 2)] == "smile" and EXPRESSION_OF[(3, 2)] == "smile"
    assert EXPRESSION_OF[(2, 2)] == "surprise" and EXPRESSION_OF[(2, 3)] == "squint"
    assert EXPRESSION_OF[(3, 3)] == "disgust" and EXPRESSION_OF[(4, 2)] == "neutral"
    assert RECORDINGS == {1: (1, 2), 2: (1, 2, 3), 3: (1, 2, 3), 4: (1, 2, 3)}
    assert FLASH_GROUPS["frontal"] == (7, 16)


def test_flash_azimuths() -> None:
    assert flash_azimuth(0) is None
    assert flash_azimuth(7) == 0.0 and flash_azimuth(16) == 0.0
    assert [flash_azimuth(f) for f in (1, 2, 3)] == [-75.0, -60.0, -45.0]
    assert [flash_azimuth(f) for f in (11, 12, 13)] == [45.0, 60.0, 75.0]
    assert sorted(FLASH_AZIMUTH) == list(range(1, 19))
    others = [FLASH_AZIMUTH[f] for f in (4, 5, 6, 8, 9, 10, 14, 15, 17, 18)]
    assert others == pytest.approx([-90, -70, -50, -30, -10, 10, 30, 50, 70, 90])
    with pytest.raises(ValueError):
        flash_azimuth(19)


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("session02/multiview/241/01/05_1/241_01_01_051_07.png", "session"),
        ("session01/multiview/241/01/05_1/242_01_01_051_07.png", "subject"),
        ("session01/multiview/241/02/05_1/241_01_01_051_07.png", "recording"),
        ("session01/multiview/241/01/05_1/241_01_01_050_07.png", "camera"),
        ("session01/multiview/241/01/07_0/241_01_01_070_07.png", "unknown camera"),
        ("session01/multiview/241/03/05_1/241_01_03_051_07.png", "recordings 1, 2"),
        ("session05/multiview/241/01/05_1/241_05_01_051_07.png", "session must be"),
        ("session01/multiview/241/01/05_1/241_01_01_051_19.png", "flash"),
        ("session01/multiview/24x/01/05_1/24x_01_01_051_07.png", "subject folder"),
        ("session01/multiview/241/01/05_1/241_01_01_051_0a.png", "file name"),
        ("session01/multiview/241/01/05_1/241_01_01_051_07.jpg", "extension"),
        ("session01/highres/241/01/05_1/241_01_01_051_07.png", "multiview"),
        ("multiview/241/01/05_1/241_01_01_051_07.png", "expected a Multi-PIE path"),
        ("session01/multiview/241/05_1/241_01_01_051_07.png", "expected a Multi-PIE path"),
        ("data/session01/multiview/241/05_1/241_01_01_051_07.png", "session folder"),
        ("session01/multiview/241/01/05_1/extra/241_01_01_051_07.png", "session folder"),
        ("session01/multiview/241/01/051/241_01_01_051_07.png", "camera folder"),
        ("session01/multiview/000/01/05_1/000_01_01_051_07.png", "subject must be"),
    ],
)
def test_bad_names_refused(path: str, part: str) -> None:
    with pytest.raises(UserError) as info:
        parse_relpath(path)
    message = str(info.value)
    assert message.startswith(path)
    assert part in message
    assert "\n" not in message


def test_dataclass_validates() -> None:
    with pytest.raises(ValueError):
        MultiPieImage(1, 1, 3, "05_1", 0)
    with pytest.raises(ValueError):
        MultiPieImage(1, 1, 1, "99_9", 0)
