"""Phase 1, per object and concurrent: S3 I/O (and the decode of a still straight to model size).

HeadObject (gone? too large? which version?) -> at once: the decision table (judged already by this
judged-by id? an action to resume?), the tags, and a ranged GET to sniff the format -> the body of a
still or multi-frame image. Three round trips in a row, not five: the middle three need only the version
the head pinned. (For an object the table says is done, the tags and first bytes were read for nothing:
two cheap GET-class requests on a redelivery.) Videos are only sniffed here; their bodies stream when
their turn comes in the judge phase.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from handler.decisions.record import version_token
from handler.exceptions import InputError
from handler.inputs.images import sniff_image_format
from handler.media.values import MultiFrame, image_media
from handler.s3 import objects as s3_object
from handler.s3 import video as s3_video
from handler.s3.context import FlowContext
from handler.s3.work import Item, Outcome, StreamedVideo
from handler.settings import Settings
from handler.video.formats import VIDEO_SNIFF_BYTES, sniff_video_format


def inspect(ctx: FlowContext, item: Item) -> None:
    """Leave `item` with pixels, a sequence, a record to act on, or a final result."""
    settings = ctx.settings
    if s3_object.in_quarantine_location(settings, item.ref):
        item.finish(Outcome.ignored, detail="object is in the quarantine location")
        return
    head = s3_object.head(ctx.s3, item.ref)
    if head is None:
        _gone(ctx, item)
        return
    item.ref = item.ref.pinned(head.get("VersionId"))  # everything below acts on the version just seen
    item.head = head
    item.version = version_token(item.ref.version_id, head.get("ETag"))
    size = int(head.get("ContentLength", 0))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3-inspect") as reads:
        tags = reads.submit(s3_object.read_tags, ctx.s3, item.ref)
        first = (
            reads.submit(s3_object.first_bytes, ctx.s3, item.ref, VIDEO_SNIFF_BYTES)
            if 0 < size <= _largest(settings)
            else None
        )
        if ctx.table is not None:
            stored = ctx.table.get(item.ref.bucket, item.ref.key, item.version, ctx.judged_by.id)
            if stored is not None and (stored.done or stored.review):  # a reviewer's action is theirs
                item.finish(Outcome.already_judged, verdict=stored.verdict, detail="recorded", record=stored)
                return
            if stored is not None:  # judged, but its tags or move did not finish: resume, never re-judge
                item.record, item.claimed = stored, True
        item.tags = tags.result()
        if item.record is None:
            _read_media(ctx, item, size, first)


def _gone(ctx: FlowContext, item: Item) -> None:
    ref = item.ref
    if ref.version_id and ctx.table is not None:
        stored = ctx.table.get(ref.bucket, ref.key, version_token(ref.version_id, None), ctx.judged_by.id)
        if stored is not None and stored.quarantine is not None:
            item.finish(Outcome.in_quarantine, verdict=stored.verdict, detail=f"in {stored.quarantine}")
            return
    bucket = ctx.settings.quarantine_bucket
    if ref.version_id and bucket:
        key = s3_object.quarantine_key(ctx.settings, ref, version_token(ref.version_id, None))
        if s3_object.exists(ctx.s3, bucket, key):
            item.finish(Outcome.in_quarantine, detail=f"in s3://{bucket}/{key}")
            return
    item.finish(Outcome.gone, detail="object no longer exists")


def _largest(settings: Settings) -> int:
    """The largest object worth reading at all: the image limit or the video limit."""
    return max(settings.object_size_limit, s3_video.video_size_limit(settings))


def _read_media(ctx: FlowContext, item: Item, size: int, sniffing: Future[bytes] | None) -> None:
    settings = ctx.settings
    limit = settings.object_size_limit
    if size > _largest(settings):  # too large for an image and for a video
        ctx.errored(item, f"object is {size} bytes, over the limit of {limit} bytes")
        return
    if size == 0 or sniffing is None:
        ctx.errored(item, "object is empty")
        return
    first = sniffing.result()
    video_format = sniff_video_format(first)
    if video_format is not None:
        item.sequence, item.kind = StreamedVideo(video_format, size), "video"
        return
    if size > limit:
        ctx.errored(item, f"object is {size} bytes, over the limit of {limit} bytes")
        return
    image_format = sniff_image_format(first)
    if image_format is None:
        ctx.errored(item, "not an image or a video: no known image or video signature")
        return
    data = s3_object.read_body(ctx.s3, item.ref)
    try:  # any failure to decode uploader bytes is the object's error verdict, never its neighbours'
        media = image_media(data, ctx.limits.image, ctx.limits.preprocess)
    except InputError as exc:
        ctx.errored(item, f"undecodable {image_format}: {exc.detail}")
        return
    if isinstance(media, MultiFrame):  # every frame is judged, as for a video
        item.sequence, item.kind = media, "frames"
    else:
        item.pixels = ctx.mod.pixels(media.image)  # only model-sized arrays wait for the model
