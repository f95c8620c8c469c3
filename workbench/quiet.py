"""Library notices that say nothing about the user's run, dropped by their exact text so every
other warning of the same library still shows."""
from __future__ import annotations

import logging

# bitsandbytes 0.49 on a CPU tries to fetch a 4-bit kernel from the Hub at import and logs that it
# would not trust it; the workbench uses no 4-bit CPU kernel
BITSANDBYTES_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
KERNELS_NOTICE = "kernels-community"


def _not_kernels_notice(record: logging.LogRecord) -> bool:
    return KERNELS_NOTICE not in record.getMessage()


def drop_bitsandbytes_kernel_notice() -> None:
    """Call before bitsandbytes is imported (diffusers imports it when it loads a model)."""
    logger = logging.getLogger(BITSANDBYTES_CPU_LOGGER)
    if _not_kernels_notice not in logger.filters:
        logger.addFilter(_not_kernels_notice)


def quiet_libraries() -> None:
    """No per-file loading bars, dtype or deprecation notices from diffusers and transformers, and
    not bitsandbytes' kernel notice, in trainer.log or a command's output (imports them: call it
    where torch is wanted anyway)."""
    import diffusers
    import transformers
    drop_bitsandbytes_kernel_notice()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
