"""Multi-PIE file naming: cameras, flashes, expressions and the relative image path.

The CMU Multi-PIE tree (as laid out by Idiap's bob.db.multipie and the face_synthetics protocol
lists) stores every multiview still as::

    session0S/multiview/SSS/RR/CC_C/SSS_0S_RR_CCC_FF.png
    e.g. session01/multiview/241/01/05_1/241_01_01_051_07.png

with ``SSS`` the subject id, ``0S`` the session (01-04), ``RR`` the recording within the session,
``CC_C`` the camera (its underscore dropped in the file name) and ``FF`` the flash/shot id (00-18,
00 = no flash). The expression is fixed by (session, recording). This module only names and parses
paths; walking a tree and selecting subsets belongs to the reader.

Cameras: 13 at head height in 15 degree steps, ordered from one profile to the other
(:data:`HEAD_HEIGHT_CAMERAS`, yaw -90..+90, ``05_1`` frontal), plus two elevated cameras ``08_1``
and ``19_1`` (labelled "left/right quarter-profile from above" by Idiap). The sources give no yaw for
the elevated pair, so :data:`CAMERA_YAW` has no entry for them and :attr:`MultiPieImage.yaw` is
``None``. The sign of the yaw is our convention (negative = the ``11_0`` side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from brownface.errors import UserError

#: Head-height cameras ordered from one profile (``11_0``) to the other (``24_0``).
HEAD_HEIGHT_CAMERAS: tuple[str, ...] = (
    "11_0",
    "12_0",
    "09_0",
    "08_0",
    "13_0",
    "14_0",
    "05_1",
    "05_0",
    "04_1",
    "19_0",
    "20_0",
    "01_0",
    "24_0",
)
#: Yaw in degrees of each head-height camera: -90, -75, ..., +90 (``05_1`` = 0, frontal).
CAMERA_YAW: dict[str, int] = {cam: -90 + 15 * i for i, cam in enumerate(HEAD_HEIGHT_CAMERAS)}
FRONTAL_CAMERA = "05_1"
#: The two cameras mounted above head height; their yaw is not given by the sources.
ELEVATED_CAMERAS: tuple[str, ...] = ("08_1", "19_1")
ELEVATED_CAMERA_LABELS: dict[str, str] = {
    "08_1": "left quarter-profile from above",
    "19_1": "right quarter-profile from above",
}
ALL_CAMERAS: tuple[str, ...] = HEAD_HEIGHT_CAMERAS + ELEVATED_CAMERAS

#: Flash (shot) ids 0..18; 0 = no flash, ambient light only.
FLASHES: tuple[int, ...] = tuple(range(19))
NO_FLASH = 0
#: The flash groups used by face_synthetics; the other ids are unused there.
FLASH_GROUPS: dict[str, tuple[int, ...]] = {
    "no_flash": (0,),
    "left": (1, 2, 3),
    "frontal": (7, 16),
    "right": (11, 12, 13),
}

EXPRESSIONS: tuple[str, ...] = ("neutral", "smile", "surprise", "squint", "disgust", "scream")
#: (session, recording) -> expression (bob.db.multipie ``add_expressions``).
EXPRESSION_OF: dict[tuple[int, int], str] = {
    (1, 1): "neutral",
    (2, 1): "neutral",
    (3, 1): "neutral",
    (4, 1): "neutral",
    (4, 2): "neutral",
    (1, 2): "smile",
    (3, 2): "smile",
    (2, 2): "surprise",
    (2, 3): "squint",
    (3, 3): "disgust",
    (4, 3): "scream",
}
SESSIONS: tuple[int, ...] = (1, 2, 3, 4)
#: Valid recordings per session, derived from :data:`EXPRESSION_OF` (session 1 has only 1-2).
RECORDINGS: dict[int, tuple[int, ...]] = {
    s: tuple(sorted(r for (s2, r) in EXPRESSION_OF if s2 == s)) for s in SESSIONS
}

# Synthetic light directions. The sources do not give the real flash positions; these azimuths
# are the synthetic world's convention: left = negative = the same side as the negative-yaw
# cameras, right the mirror image, both frontal flashes straight ahead.
_GROUP_AZIMUTH: dict[int, float] = {
    1: -75.0,
    2: -60.0,
    3: -45.0,
    7: 0.0,
    16: 0.0,
    11: 45.0,
    12: 60.0,
    13: 75.0,
}
_OTHER_FLASHES = tuple(f for f in FLASHES[1:] if f not in _GROUP_AZIMUTH)
#: Azimuth in degrees for flashes 1..18. The ten ids outside the named groups (4, 5, 6, 8, 9,
#: 10, 14, 15, 17, 18) are spread evenly over [-90, +90] in id order: -90, -70, ..., +70, +90.
FLASH_AZIMUTH: dict[int, float] = {
    **_GROUP_AZIMUTH,
    **{f: -90.0 + 180.0 * k / (len(_OTHER_FLASHES) - 1) for k, f in enumerate(_OTHER_FLASHES)},
}


def flash_azimuth(flash: int) -> float | None:
    """Light azimuth (degrees) of a flash id in the synthetic world; ``None`` for 0 (no flash)."""
    if flash == NO_FLASH:
        return None
    if flash not in FLASH_AZIMUTH:
        raise ValueError(f"flash id must be in 0..18, got {flash!r}")
    return FLASH_AZIMUTH[flash]


def _problem(subject: int, session: int, recording: int, camera: str, flash: int) -> str | None:
    """What is wrong with these fields, or ``None`` if they name a possible image."""
    if not 1 <= subject <= 999:
        return f"subject must be 001..999, got {subject}"
    if session not in SESSIONS:
        return f"session must be 1..4, got {session}"
    if recording not in RECORDINGS[session]:
        valid = ", ".join(str(r) for r in RECORDINGS[session])
        return f"session {session} has recordings {valid}, got {recording}"
    if camera not in ALL_CAMERAS:
        return f"unknown camera {camera!r} (expected one of {', '.join(ALL_CAMERAS)})"
    if flash not in FLASHES:
        return f"flash must be 00..18, got {flash}"
    return None


@dataclass(frozen=True)
class MultiPieImage:
    """One multiview still: subject, session, recording, camera (e.g. ``"05_1"``) and flash."""

    subject: int
    session: int
    recording: int
    camera: str
    flash: int

    def __post_init__(self) -> None:
        problem = _problem(self.subject, self.session, self.recording, self.camera, self.flash)
        if problem is not None:
            raise ValueError(f"invalid Multi-PIE image: {problem}")

    @property
    def expression(self) -> str:
        return EXPRESSION_OF[(self.session, self.recording)]

    @property
    def yaw(self) -> int | None:
        """Camera yaw in degrees (-90..90); ``None`` for the elevated cameras 08_1 and 19_1."""
        return CAMERA_YAW.get(self.camera)

    @property
    def camera_code(self) -> str:
        """The camera as written in file names, without the underscore (``"051"``)."""
        return self.camera.replace("_", "")

    @property
    def stem(self) -> str:
        """The file name without extension, e.g. ``241_01_01_051_07``."""
        return (
            f"{self.subject:03d}_{self.session:02d}_{self.recording:02d}_"
            f"{self.camera_code}_{self.flash:02d}"
        )

    def relpath(self, ext: str = "png") -> str:
        """Path relative to the Multi-PIE root, with forward slashes."""
        return (
            f"session{self.session:02d}/multiview/{self.subject:03d}/{self.recording:02d}/"
            f"{self.camera}/{self.stem}.{ext}"
        )


_SESSION_DIR = re.compile(r"session(\d{2})")
_SUBJECT_DIR = re.compile(r"\d{3}")
_RECORDING_DIR = re.compile(r"\d{2}")
_CAMERA_DIR = re.compile(r"\d{2}_\d")
_FILE_NAME = re.compile(r"(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.([A-Za-z0-9]+)")
_LAYOUT = "session0S/multiview/SSS/RR/CC_C/SSS_0S_RR_CCC_FF.png"


def parse_relpath(path: str | Path, ext: str | None = "png") -> MultiPieImage:
    """Parse a Multi-PIE multiview path (relative to the root, or any path ending with it).

    Every field is checked: the file name must agree with its folders, the camera must be known,
    the recording must exist in that session, the flash must be 00..18 and the extension must
    be ``ext`` (any extension if ``None``). Raises :class:`UserError` naming the path and the part.
    """
    parts = str(path).replace("\\", "/").split("/")
    parts = [p for p in parts if p not in ("", ".")]
    if len(parts) < 6:
        raise UserError(f"{path}: expected a Multi-PIE path ending in {_LAYOUT}")
    session_dir, multiview, subject_dir, recording_dir, camera_dir, name = parts[-6:]

    def fail(what: str, layout: bool = True) -> UserError:
        return UserError(f"{path}: {what}" + (f" (expected {_LAYOUT})" if layout else ""))

    m_session = _SESSION_DIR.fullmatch(session_dir)
    if m_session is None:
        raise fail(f"session folder {session_dir!r} is not sessionNN")
    if multiview != "multiview":
        raise fail(f"folder {multiview!r} should be 'multiview'")
    if _SUBJECT_DIR.fullmatch(subject_dir) is None:
        raise fail(f"subject folder {subject_dir!r} is not 3 digits")
    if _RECORDING_DIR.fullmatch(recording_dir) is None:
        raise fail(f"recording folder {recording_dir!r} is not 2 digits")
    if _CAMERA_DIR.fullmatch(camera_dir) is None:
        raise fail(f"camera folder {camera_dir!r} is not of the form NN_N")
    m_name = _FILE_NAME.fullmatch(name)
    if m_name is None:
        raise fail(f"file name {name!r} is not SSS_SS_RR_CCC_FF.ext")
    f_subject, f_session, f_recording, f_camera, f_flash, f_ext = m_name.groups()
    if ext is not None and f_ext != ext:
        raise fail(f"extension {f_ext!r} should be {ext!r}")
    if f_session != m_session.group(1):
        raise fail(f"file name session {f_session} disagrees with folder {session_dir}")
    if f_subject != subject_dir:
        raise fail(f"file name subject {f_subject} disagrees with folder {subject_dir}")
    if f_recording != recording_dir:
        raise fail(f"file name recording {f_recording} disagrees with folder {recording_dir}")
    if f_camera != camera_dir.replace("_", ""):
        raise fail(f"file name camera {f_camera} disagrees with folder {camera_dir}")
    fields = (int(f_subject), int(f_session), int(f_recording), camera_dir, int(f_flash))
    problem = _problem(*fields)
    if problem is not None:
        raise fail(problem, layout=False)
    return MultiPieImage(*fields)
