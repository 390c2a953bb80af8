"""Damaged and odd inputs to `ferflow predict`: refused in one line, or analysed with a warning
that says what was missing. Every bad file here is made by the test itself."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import imaging
from pipeline.cli import main


def run(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, list[dict], str]:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ferflow: error: ")
    return lines[0]


def png_claiming(width: int, height: int) -> bytes:
    """A 70-byte PNG whose header claims width x height pixels (its data is 100 zero bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def noisy_jpeg(seed: int = 0, size: int = 240) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


# ---------------------------------------------------------------------------------------
# Image size: checked from the header before decoding; a flag raises the limit.
# ---------------------------------------------------------------------------------------


def test_image_claiming_60000_by_60000_pixels_is_refused_before_decoding(
    capfd, app_model_dir, tmp_path
):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_claiming(60000, 60000))

    code, records, err = run(capfd, "predict", huge, "--model-dir", app_model_dir)

    assert code == 1 and records == []
    line = one_error_line(err)
    assert f"{huge}: the image is 60,000 x 60,000 = 3,600,000,000 pixels" in line
    assert "more than the limit of 200,000,000" in line and "--max-pixels" in line


def test_decoder_errors_are_one_line(capfd, app_model_dir, tmp_path):
    """Past ferflow's limit the decoder's failure is one line too, and a file that ends
    early (other than a JPEG) is refused, never decoded in part: the 60000 x 60000 PNG of
    100 bytes would otherwise fill 14 GB of missing rows."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_claiming(60000, 60000))
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_claiming(3000, 2000))  # allowed, but its data is not there

    code, _, err = run(capfd, "predict", huge, "--model-dir", app_model_dir, "--max-pixels", "4e9")
    assert code == 1
    line = one_error_line(err)
    assert f"{huge}: not a readable image" in line and "truncated" in line

    code, _, err = run(capfd, "predict", wide, "--model-dir", app_model_dir)
    assert code == 1
    assert f"{wide}: " in one_error_line(err)


def test_max_pixels_flag_sets_the_limit(capfd, app_model_dir, tmp_path):
    image = tmp_path / "small.png"
    cv2.imwrite(str(image), np.full((100, 300, 3), 128, np.uint8))

    code, _, err = run(capfd, "predict", image, "--model-dir", app_model_dir, "--max-pixels", "2e4")
    assert code == 1
    assert "300 x 100 = 30,000 pixels, more than the limit of 20,000" in one_error_line(err)

    code, records, _ = run(
        capfd, "predict", image, "--model-dir", app_model_dir, "--max-pixels", "0.03M"
    )
    assert code == 0 and len(records) == 1


def test_an_oversized_image_in_a_folder_is_skipped_and_named(
    capfd, app_model_dir, tmp_path, astronaut_bgr
):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), astronaut_bgr)
    (folder / "b_huge.png").write_bytes(png_claiming(60000, 60000))

    code, records, err = run(capfd, "predict", folder, "--model-dir", app_model_dir)

    assert code == 0
    assert [Path(r["file"]).name for r in records] == ["a.png"]
    assert "ferflow: skipped" in err and "b_huge.png: the image is 60,000 x 60,000" in err


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".pgm", ".ppm"])
def test_header_size_matches_what_is_decoded(tmp_path, suffix):
    from pipeline.app.image_header import image_size

    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    if suffix == ".pgm":
        image = image[..., 0]
    ok, data = cv2.imencode(suffix, image)
    assert ok

    assert image_size(data.tobytes()) == (53, 37)
    assert imaging.decode(data.tobytes()).shape[:2] == (37, 53)


def test_header_size_of_gif_and_of_what_is_no_image(tmp_path):
    from PIL import Image

    from pipeline.app.image_header import image_size

    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(tmp_path / "x.gif")

    assert image_size((tmp_path / "x.gif").read_bytes()) == (53, 37)
    assert image_size(b"just some text") is None
    assert image_size(b"\x89PNG\r\n\x1a\n") is None  # a header cut short


# ---------------------------------------------------------------------------------------
# A JPEG that ends early decodes without an error, grey below the cut: flag it.
# ---------------------------------------------------------------------------------------


def test_truncated_jpeg_is_analysed_with_a_warning(capfd, app_model_dir, tmp_path):
    data = noisy_jpeg()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])

    code, records, err = run(capfd, "predict", cut, "--model-dir", app_model_dir, "-q")

    assert code == 0 and len(records) == 1
    assert "Traceback" not in err
    (warning,) = [line for line in err.splitlines() if line.startswith("ferflow: warning:")]
    assert f"{cut}: the JPEG file ends before its end-of-image marker" in warning


def test_truncated_jpeg_in_a_folder_is_flagged_too(capfd, app_model_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    data = noisy_jpeg()
    (folder / "complete.jpg").write_bytes(data)
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])

    code, records, err = run(capfd, "predict", folder, "--model-dir", app_model_dir)

    assert code == 0 and len(records) == 2
    assert err.count("ferflow: warning:") == 1 and "cut.jpg: the JPEG file ends" in err
    assert "1 damaged file, read in part" in err


def test_jpeg_end_marker_check_skips_headers_and_allows_trailing_bytes():
    from pipeline.app.image_header import jpeg_ends_early

    data = noisy_jpeg()
    # An APP1 block (where EXIF keeps a thumbnail, a complete JPEG of its own) holding an
    # end-of-image marker must not make a cut-off main image look complete.
    payload = b"Exif\x00\x00" + b"\xff\xd8 thumbnail \xff\xd9"
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    with_thumbnail = data[:2] + app1 + data[2:]

    assert not jpeg_ends_early(data)
    assert not jpeg_ends_early(with_thumbnail)
    assert jpeg_ends_early(with_thumbnail[: len(with_thumbnail) - 200])
    assert not jpeg_ends_early(data + b"a video a phone appended")
    assert not jpeg_ends_early(b"not a jpeg at all")


# ---------------------------------------------------------------------------------------
# GIFs: read the same way inside a folder as named on the command line.
# ---------------------------------------------------------------------------------------


def test_gif_in_a_folder_is_analysed_like_a_named_gif(capfd, app_model_dir, tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 80, 3), 100, np.uint8))
    Image.fromarray(np.full((60, 80, 3), 200, np.uint8)).save(folder / "b.gif")

    _, named, _ = run(capfd, "predict", folder / "b.gif", "--model-dir", app_model_dir)
    code, in_folder, err = run(capfd, "predict", folder, "--model-dir", app_model_dir)

    assert code == 0, err
    assert [Path(r["file"]).name for r in named] == ["b.gif"]
    assert [Path(r["file"]).name for r in in_folder] == ["a.png", "b.gif"]
    assert in_folder[1]["faces"] == named[0]["faces"] == 0


# ---------------------------------------------------------------------------------------
# Videos: frames decoded vs frames the container declares.
# ---------------------------------------------------------------------------------------


def write_test_video(path: Path, fourcc: str, frames: int = 60) -> Path:
    """160x120 at 15 fps: a white bar moving over grey, with some noise to compress."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 15.0, (160, 120))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = np.full((120, 160, 3), 90, np.uint8)
        frame[:, (2 * i) % 140 : (2 * i) % 140 + 20] = 255
        frame[::7, ::5] = rng.integers(0, 255, (18, 32, 3))
        writer.write(frame)
    writer.release()
    return path


def damage_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = bytes(third)
    path.write_bytes(bytes(data))
    return path


def cut_at(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize(
    ("name", "fourcc", "damage"),
    [
        ("middle.mp4", "mp4v", damage_middle),
        ("cut.avi", "MJPG", lambda p: cut_at(p, 0.6)),
    ],
)
def test_video_that_stops_decoding_early_gets_a_warning_with_both_counts(
    capfd, app_model_dir, tmp_path, name, fourcc, damage
):
    video = damage(write_test_video(tmp_path / name, fourcc))

    code, records, err = run(capfd, "predict", video, "--model-dir", app_model_dir, "-q")

    decoded = len({r["frame"] for r in records})
    assert code == 0 and 0 < decoded < 60
    (warning,) = [line for line in err.splitlines() if line.startswith("ferflow: warning:")]
    assert f"{video}: decoded {decoded} of the 60 frames its container declares" in warning


def test_intact_video_gets_no_warning(capfd, app_model_dir, tmp_path):
    video = write_test_video(tmp_path / "intact.avi", "MJPG", frames=20)

    code, records, err = run(capfd, "predict", video, "--model-dir", app_model_dir)

    assert code == 0 and len({r["frame"] for r in records}) == 20
    assert "warning" not in err and "damaged" not in err
