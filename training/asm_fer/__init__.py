"""asm-fer training: FER datasets -> ASM / baseline training -> ONNX model bundle."""

__version__ = "0.1.0"
