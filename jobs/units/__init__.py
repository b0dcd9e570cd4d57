"""Work units: each kind's data and its handler, the code an actor runs for it, in one module.

* :mod:`jobs.units.images`: :class:`~jobs.units.images.ImageShard`, a few stills;
* :mod:`jobs.units.frame_ranges`: :class:`~jobs.units.frame_ranges.FrameRange`, consecutive frames of one video;
* :mod:`jobs.units.hint_tracks`: :class:`~jobs.units.hint_tracks.HintTrack`, a video's keyframe hints carried
  through its shots before its ranges;
* :mod:`jobs.units.assembly`: :class:`~jobs.units.assembly.AssemblyTask`, a video's ranges joined.

What they share: :mod:`jobs.units.base` (the interface the scheduler reads, results, the job's
settings for actors) and :mod:`jobs.units.context` (what one actor's handlers share).
:class:`jobs.worker.UnitProcessor` routes each unit to its kind's handler.
"""
