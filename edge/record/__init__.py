"""Recording on the edge: continuous fMP4 segments with retention, and event clips.

``Recorder`` (one per camera) writes the camera's access units, never re-encoded, into
fragmented MP4 segments and keeps the card from filling; ``ClipCutter`` cuts a clip per
event from a pre-roll buffer. Both take frames on the source thread without blocking it.
"""

from edge.record.clips import ClipCutter, ClipFile
from edge.record.recorder import Recorder
from edge.record.settings import RecordSettings, parse_record

__all__ = ["ClipCutter", "ClipFile", "RecordSettings", "Recorder", "parse_record"]
