"""NumPy reference BitNet b1.58: the float model (transformers' ``bitnet`` semantics), checkpoint
I/O in the Hugging Face layout, and the integer model that defines what the hardware computes."""

from .bitnet import BitNetModel, load_checkpoint
from .checkpoint import Weights, load_weights, random_checkpoint, save_checkpoint
from .config import BitNetConfig, CheckpointError

__all__ = ["BitNetConfig", "BitNetModel", "CheckpointError", "Weights", "load_checkpoint",
           "load_weights", "random_checkpoint", "save_checkpoint"]
