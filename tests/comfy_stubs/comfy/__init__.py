"""Stand-in `comfy` package; see tests/comfy_stubs/__init__.py."""
