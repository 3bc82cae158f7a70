"""Images paired with the CameraInfo of their stamp: the rule every camera pipeline follows.

Real recordings and drivers write a frame's CameraInfo before or after its image, so neither order may
be assumed: an image whose CameraInfo (same header stamp) has arrived runs at once with it; otherwise
it is held until that CameraInfo comes or ``wait_s`` has passed on the caller's clock, then runs with
the newest CameraInfo (counted ``late``, logged once), or with none when none ever came. A second image
arriving while one is held releases the held one first: at most one frame waits.

Callers parse (and decode) a message *before* handing it here, so a malformed one raises before a held
image leaves the buffer and the held image is never lost with the exception.
"""

from __future__ import annotations

import logging
from typing import Any

from perception_pkg.geometry3d.camera import CameraModel
from perception_pkg.msgs import stamp_to_ns
from perception_pkg.pipelines.base import Job

log = logging.getLogger("perception_pkg.pipelines")

KEEP_INFOS = 16  # CameraInfos remembered by stamp, for images that arrive after their CameraInfo


class CameraInfoPairing:
    """The pairing state of one camera (see the module docstring)."""

    def __init__(self, owner: str, wait_s: float) -> None:
        self.owner = owner  # the pipeline's name, for the log line
        self.wait_s = wait_s
        self.newest: CameraModel | None = None  # one reference swap: a worker may read it unlocked
        self.expected = True  # replay: False when the recording has no CameraInfo topic
        self.late = 0  # released with the newest CameraInfo: the one with its stamp never came
        self._infos: dict[int, CameraModel] = {}  # by header stamp, the newest KEEP_INFOS
        self._pending: tuple[Job, int, float] | None = None  # (job, its stamp, deadline)
        self._logged = False

    def add_info(self, camera: CameraModel, header: Any, now_s: float) -> list[Job]:
        """Remember a parsed CameraInfo; jobs ready now (an expired hold, or the image it completes)."""
        stamp = stamp_to_ns(header)
        ready = self.poll(now_s)
        self.newest = camera
        self._infos[stamp] = camera
        while len(self._infos) > KEEP_INFOS:
            del self._infos[next(iter(self._infos))]
        if self._pending is not None and self._pending[1] == stamp:
            job = self._pending[0]
            job.partner, self._pending = camera, None
            ready.append(job)
        return ready

    def info_for(self, header: Any) -> CameraModel | None:
        """The CameraInfo with this header's stamp, if it has arrived."""
        return self._infos.get(stamp_to_ns(header))

    def hold(self, job: Job, now_s: float) -> list[Job]:
        """Hold an image (its CameraInfo has not come yet); jobs released by it, oldest first."""
        ready = self.poll(now_s)
        if self._pending is not None:  # the next image came first: run the older one now
            ready.append(self._release())
        self._pending = (job, stamp_to_ns(job.msg.header), now_s + self.wait_s)
        return ready

    def poll(self, now_s: float) -> list[Job]:
        """The held image once its wait is over (a node calls this from a timer, replay per message)."""
        if self._pending is not None and now_s >= self._pending[2]:
            return [self._release()]
        return []

    def finish(self) -> list[Job]:
        return [self._release()] if self._pending is not None else []

    def _release(self) -> Job:
        assert self._pending is not None
        job = self._pending[0]
        self._pending = None
        if self.newest is not None:  # its own CameraInfo never came: the newest one stands in
            self.late += 1
            if not self._logged:
                self._logged = True
                log.warning(
                    "%s: an image's CameraInfo (same stamp) did not come in time; using the newest "
                    "(counted in diagnostics / summary.json; logged once)",
                    self.owner,
                )
        return job


class PairedCamera:
    """Mixin for a :class:`~perception_pkg.pipelines.base.Pipeline` whose main input is an image paired
    with CameraInfo through ``self.pairing``: the pipeline steps that only hand over to the pairing."""

    pairing: CameraInfoPairing

    @property
    def camera_info_late(self) -> int:
        return self.pairing.late

    def inputs_available(self, keys: set[str]) -> None:
        self.pairing.expected = "camera_info" in keys

    def poll(self, now_s: float) -> list[Job]:
        """The held image once its wait is over (the node calls this from a timer, replay per message)."""
        return self.pairing.poll(now_s)

    def finish(self) -> list[Job]:
        return self.pairing.finish()
