"""Stand-in for comfy.model_management (CPU only), with an interrupt that can fire mid-run."""

import torch

OOM_EXCEPTION = torch.cuda.OutOfMemoryError
INTERRUPT_AFTER_CHECKS = [None]  # set [n]: the n-th check raises (Cancel pressed mid-run)
INTERRUPT_CHECKS = [0]
FREE_MEMORY = [8 * 1024 ** 3]
LOADED = []


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def get_free_memory(dev=None, torch_free_too=False):
    if torch_free_too:
        return FREE_MEMORY[0], FREE_MEMORY[0]
    return FREE_MEMORY[0]


def throw_exception_if_processing_interrupted():
    INTERRUPT_CHECKS[0] += 1
    limit = INTERRUPT_AFTER_CHECKS[0]
    if limit is not None and INTERRUPT_CHECKS[0] >= limit:
        INTERRUPT_AFTER_CHECKS[0] = None
        raise InterruptProcessingException()


def processing_interrupted():
    return False


def load_model_gpu(model):
    LOADED.append(model)
    model.model.to(model.load_device)


def load_models_gpu(models, memory_required=0, **kwargs):
    for model in models:
        load_model_gpu(model)


def soft_empty_cache(force=False):
    pass


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False
