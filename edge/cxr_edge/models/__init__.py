"""The models on the box: the TFLite interpreter, the two-stage cascade, the out-of-distribution score and the
interpreter probe."""
