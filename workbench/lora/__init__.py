"""The LoRA file: its safetensors header, kohya's module names, the network structure and
block-wise ranks read from it, the ss_* metadata written (write_metadata) and read back
(read_metadata), sd-scripts' hashes, and the inspector built on them. Everything here reads the
header and bytes only, except the per-block norms (structure.module_norms), which read tensors
when asked."""
