"""The networks: the ResNet trained from scratch, dlib's face-descriptor ResNet (read from face-api's tfjs
weights) with its classifier head, and frozen onnxruntime copies for the evaluation passes."""
