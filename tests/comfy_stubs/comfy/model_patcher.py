"""Stand-in for comfy.model_patcher.ModelPatcher: holds the module and its devices."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size or sum(p.numel() * p.element_size() for p in model.parameters())

    def model_size(self):
        return self.size

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()
        return next(self.model.parameters()).dtype

    def is_clone(self, other):
        return other is self
