"""What a clinician sees beside each result: display copies, thumbnails and occlusion heatmaps."""
