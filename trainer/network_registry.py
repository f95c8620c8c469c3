"""The network a run trains, picked by network_module as sd-scripts picks it (it imports the module
named there and calls its create_network): networks.lora and lycoris.kohya are siblings behind one
`Network`, and neither imports the other."""
from __future__ import annotations

from trainer.lycoris_network import create_lycoris_network
from trainer.network import Network, create_lora_network

BUILDERS = {"networks.lora": create_lora_network, "lycoris.kohya": create_lycoris_network}


def create_network(cfg, unet, text_encoders: list, weights_path: str | None = None) -> Network:
    """The run's network, its modules created but not yet applied (call apply_to); weights_path
    (else cfg.network_weights) continues from a LoRA file."""
    return BUILDERS[cfg.network_module](cfg, unet, text_encoders, weights_path)
