"""Metrics in numpy: COCO box AP (pycocotools), TIDE error breakdown, KITTI AP3D / AP_BEV, and keypoint
OKS AP (pycocotools) with PCK/AUC (:mod:`.keypoints`)."""
