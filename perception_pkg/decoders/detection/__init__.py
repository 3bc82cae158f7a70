"""Detection decoders, one module per output format (``decoder.type`` in :mod:`..registry`):
:mod:`.centernet`, :mod:`.rtm3d` (CenterNet + 9 projected box vertices), :mod:`.yolox`, :mod:`.yolov8`
(also YOLO11, same layout), :mod:`.detr` (RT-DETR / DETR set prediction, no NMS).

Nothing is imported here: the registry imports a decoder's module when a card names it.
"""
