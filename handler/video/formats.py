"""Telling video files from everything else by their first bytes (never by name or content type)."""

from __future__ import annotations

from handler.inputs.images import sniff_image_format

#: Sniffed image formats that may hold several frames (APNG is a png, MPO a jpeg, pages a tiff, bursts a
#: heic/heif/avif); an image of these with more than one frame is judged frame by frame.
MULTI_FRAME_FORMATS = frozenset({"gif", "webp", "png", "tiff", "jpeg", "heic", "heif", "avif"})

#: Enough for every signature below (MPEG-TS needs three 188-byte packets' sync bytes).
VIDEO_SNIFF_BYTES = 512

_TS_PACKET = 188
# ISO BMFF brands that are still images (HEIF/AVIF), not video: sniff_image_format's business.
_IMAGE_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)
_QUICKTIME_BRAND = b"qt  "
_EBML = b"\x1a\x45\xdf\xa3"


def sniff_video_format(head: bytes) -> str | None:
    """`mp4`, `mov`, `webm`, `matroska`, `avi` or `mpegts` from a file's first bytes, else None.

    Give it the first `VIDEO_SNIFF_BYTES` bytes (fewer is fine for every format but MPEG-TS).
    Audio-only files in a video container (an `.m4a`, a `.weba`) are sniffed as video: only opening
    them tells, and that answers "no video stream".
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "mov" if brand == _QUICKTIME_BRAND else "mp4"
    if head.startswith(_EBML):
        return "webm" if b"webm" in head[:64] else "matroska"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if _is_mpegts(head):
        return "mpegts"
    return None


def _is_mpegts(head: bytes) -> bool:
    """Sync byte 0x47 at the start of three consecutive 188-byte packets (one alone is just a `G`)."""
    packets = [head[i] for i in range(0, min(len(head), 3 * _TS_PACKET), _TS_PACKET)]
    return len(packets) == 3 and all(byte == 0x47 for byte in packets)


def media_kind(head: bytes) -> str | None:
    """The video container, or an image format that may hold several frames; None for anything else."""
    video = sniff_video_format(head)
    if video is not None:
        return video
    image = sniff_image_format(head)
    return image if image in MULTI_FRAME_FORMATS else None
