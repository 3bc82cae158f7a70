"""Detection metrics in numpy: COCO box AP (pycocotools), TIDE error breakdown, KITTI AP3D / AP_BEV."""
