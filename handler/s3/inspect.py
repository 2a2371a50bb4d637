"""Phase 1, per object and concurrent: S3 I/O (and the decode of a still straight to model size).

HeadObject (gone? too large?) -> the decision table (judged already by this judged-by id? an action to
resume?) -> tags -> a ranged GET to sniff the format -> the body of a still or multi-frame image.
Videos are only sniffed here; their bodies stream when their turn comes in the judge phase.
"""

from __future__ import annotations

from handler.decisions.record import version_token
from handler.exceptions import InputError
from handler.inputs.images import sniff_image_format
from handler.media.values import MultiFrame, image_media
from handler.s3 import objects as s3_object
from handler.s3 import video as s3_video
from handler.s3.context import FlowContext
from handler.s3.work import Item, Outcome, StreamedVideo
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
    if ctx.table is not None:
        stored = ctx.table.get(item.ref.bucket, item.ref.key, item.version, ctx.judged_by.id)
        if stored is not None and (stored.done or stored.review):  # a reviewer's action is theirs to finish
            item.finish(Outcome.already_judged, verdict=stored.verdict, detail="recorded", record=stored)
            return
        if stored is not None:  # judged, but its tags or move did not finish: resume, never re-judge
            item.record, item.claimed = stored, True
    item.tags = s3_object.read_tags(ctx.s3, item.ref)
    if item.record is None:
        _read_media(ctx, item, int(head.get("ContentLength", 0)))


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


def _read_media(ctx: FlowContext, item: Item, size: int) -> None:
    settings = ctx.settings
    limit = settings.object_size_limit
    if size > max(limit, s3_video.video_size_limit(settings)):  # too large for an image and for a video
        ctx.errored(item, f"object is {size} bytes, over the limit of {limit} bytes")
        return
    if size == 0:
        ctx.errored(item, "object is empty")
        return
    first = s3_object.first_bytes(ctx.s3, item.ref, VIDEO_SNIFF_BYTES)
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
